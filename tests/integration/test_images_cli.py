"""`dockyard image ...` end to end on a temporary data dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard.cli.image_commands import image_app
from dockyard.images.store import ImageStore

pytestmark = pytest.mark.integration

runner = CliRunner()


def image(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(image_app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.output


def test_dockyard_image_is_registered(tmp_path: Path) -> None:
    dockyard = Path(sys.executable).parent / "dockyard"
    out = subprocess.run(
        [str(dockyard), "image", "bootstrap", "busybox", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("busybox:latest sha256:")


def test_bootstrap_ls_tag_inspect_rm(tmp_path: Path) -> None:
    assert image(tmp_path, "bootstrap", "busybox")[0] == 0
    assert image(tmp_path, "tag", "busybox", "my-nginx:1")[0] == 0
    code, out = image(tmp_path, "ls")
    assert code == 0 and "busybox" in out and "my-nginx" in out
    code, out = image(tmp_path, "ls", "-o", "json")
    refs = [i["reference"] for i in json.loads(out)]
    assert refs == ["docker.io/library/busybox:latest", "docker.io/library/my-nginx:1"]
    code, out = image(tmp_path, "inspect", "my-nginx:1")
    [details] = json.loads(out)
    assert details["Config"]["Cmd"] == ["sh"] and details["RepoTags"] == ["my-nginx:1"]
    code, out = image(tmp_path, "rm", "my-nginx:1")
    assert code == 0 and "Untagged: docker.io/library/my-nginx:1" in out
    # busybox still uses every blob, so nothing is deleted.
    assert "Deleted" not in out
    assert [i.reference for i in ImageStore(tmp_path).list_images()] == [
        "docker.io/library/busybox:latest"
    ]


def test_unknown_image_suggests_a_name(tmp_path: Path) -> None:
    image(tmp_path, "bootstrap", "busybox")
    image(tmp_path, "tag", "busybox", "my-nginx")
    code, out = image(tmp_path, "inspect", "my-ngnix")
    assert code == 1
    assert "image my-ngnix not found — did you mean my-nginx?" in out


def test_save_load_and_oci_round_trip(tmp_path: Path) -> None:
    data, other = tmp_path / "a", tmp_path / "b"
    image(data, "bootstrap", "busybox")
    assert image(data, "save", "-o", str(tmp_path / "x.tar"), "busybox")[0] == 0
    code, out = image(other, "load", "-i", str(tmp_path / "x.tar"))
    assert code == 0 and "Loaded image: busybox:latest" in out
    assert image(data, "export-oci", "busybox", "-o", str(tmp_path / "layout"))[0] == 0
    code, out = image(tmp_path / "c", "import-oci", str(tmp_path / "layout"))
    assert code == 0 and "Imported image: busybox:latest" in out
    code, out = image(other, "layers", "busybox")
    assert code == 0 and Path(out.strip()).joinpath("bin", "busybox").is_file()


def test_bad_input_fails_clearly(tmp_path: Path) -> None:
    code, out = image(tmp_path, "bootstrap", "alpine")
    assert code == 1 and "choose busybox or debian" in out
    code, out = image(tmp_path, "load", "-i", str(tmp_path / "missing.tar"))
    assert code == 1 and "Error:" in out
    code, out = image(tmp_path, "tag", "busybox", "Bad:Name")
    assert code == 1 and "Error:" in out
