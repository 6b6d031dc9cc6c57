"""The Docker-style verbs from the command line: build, images, history, rmi, save, load,
login, push, pull."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard.cli.main import app
from dockyard.images.store import Image, ImageStore
from tests.integration import image_fixtures, registry_fixtures
from tests.integration.registry_fixtures import PASSWORD, USER, RunningRegistry

pytestmark = pytest.mark.integration

image_store = image_fixtures.image_store
busybox_image = image_fixtures.busybox_image
auth_registry = registry_fixtures.auth_registry


def dockyard(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text(
        "FROM busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy\n"
        'CMD ["cat", "/copy"]\n'
    )
    (root / "hello.txt").write_text("hello\n")
    return root


def test_build_quiet_plain_history_and_images(
    image_store: ImageStore, busybox_image: Image, context: Path
) -> None:
    data = str(image_store.data_dir)
    code, out, err = dockyard("build", "-q", "-t", "hello:1", "--data-dir", data, str(context))
    assert code == 0, err
    assert out.strip() == image_store.resolve("hello:1").id
    code, out, _ = dockyard("build", "--progress", "plain", "-t", "hello:1", "--data-dir", data,
                            str(context))  # fmt: skip
    assert code == 0
    assert "#2 CACHED" in out and "#3 CACHED" in out and "naming to hello:1 done" in out
    code, out, _ = dockyard("history", "-o", "json", "--data-dir", data, "hello:1")
    steps = [h["created_by"] for h in json.loads(out)]
    assert code == 0 and "RUN /bin/sh -c cat /hello.txt > /copy" in steps
    code, out, _ = dockyard("images", "-o", "json", "--data-dir", data)
    assert "docker.io/library/hello:1" in [i["reference"] for i in json.loads(out)]


def test_failing_build_prints_the_output_and_exit_code(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    context = tmp_path / "bad"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo going down; exit 7\n")
    code, _, err = dockyard("build", "-t", "bad:1", "--progress", "plain", "--data-dir",
                            str(image_store.data_dir), str(context))  # fmt: skip
    assert code == 1
    assert "line 2: RUN failed" in err and "non-zero code: 7" in err and "going down" in err


def test_rmi_is_refused_while_a_container_holds_the_image(
    image_store: ImageStore, busybox_image: Image, context: Path
) -> None:
    data = str(image_store.data_dir)
    assert dockyard("build", "-q", "-t", "held:1", "--data-dir", data, str(context))[0] == 0
    image_store.hold("container-1", image_store.resolve("held:1"))
    code, _, err = dockyard("rmi", "--data-dir", data, "held:1")
    assert code == 1 and "used by container container-1" in err
    code, out, _ = dockyard("rmi", "-f", "--data-dir", data, "held:1")
    assert code == 0 and "Untagged: docker.io/library/held:1" in out
    image_store.release("container-1")


def test_save_and_load_round_trip(
    image_store: ImageStore, busybox_image: Image, context: Path, tmp_path: Path
) -> None:
    data = str(image_store.data_dir)
    assert dockyard("build", "-q", "-t", "saved:1", "--data-dir", data, str(context))[0] == 0
    archive = tmp_path / "saved.tar"
    assert dockyard("save", "-o", str(archive), "--data-dir", data, "saved:1")[0] == 0
    other = tmp_path / "other"
    code, out, _ = dockyard("load", "-i", str(archive), "--data-dir", str(other))
    assert code == 0 and "Loaded image: saved:1" in out
    assert ImageStore(other).resolve("saved:1").id == image_store.resolve("saved:1").id


def test_login_push_pull_from_the_command_line(
    image_store: ImageStore, busybox_image: Image, auth_registry: RunningRegistry,
    tmp_path: Path,
) -> None:  # fmt: skip
    config = str(tmp_path / "docker-config")
    host = auth_registry.host
    code, out, err = dockyard("login", host, "-u", USER, "--password-stdin", "--config", config,
                              input=PASSWORD + "\n")  # fmt: skip
    assert code == 0 and "Login Succeeded" in out, err
    name = f"{host}/cli/busybox:1"
    data = str(image_store.data_dir)
    assert dockyard("tag", "busybox", name, "--data-dir", data)[0] == 0
    code, out, err = dockyard("push", name, "--config", config, "--data-dir", data)
    assert code == 0 and busybox_image.manifest_digest in out, err
    code, out, err = dockyard("pull", name, "--config", config, "--data-dir",
                              str(tmp_path / "pulled"))  # fmt: skip
    assert code == 0 and busybox_image.manifest_digest in out, err
    code, _, err = dockyard("pull", f"{host}/cli/missing:1", "--config", config,
                            "--data-dir", str(tmp_path / "pulled"))  # fmt: skip
    assert code == 1 and "MANIFEST_UNKNOWN" in err
