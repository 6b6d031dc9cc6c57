"""Archives: our exports load in podman and skopeo; our imports take theirs and round-trip."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.images.archive import (
    ArchiveError,
    export_oci,
    import_oci,
    load_archive,
    save_docker_archive,
)
from dockyard.images.store import Image, ImageStore
from tests.integration import image_fixtures

image_store = image_fixtures.image_store
busybox_image = image_fixtures.busybox_image

pytestmark = pytest.mark.integration

needs_podman = pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed")
needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[list[str]]:
    """A podman command bound to a private storage root, removed afterwards."""
    root = tmp_path / "podman-root"
    # podman refuses a runroot longer than 50 characters, so it cannot live in tmp_path.
    runroot = Path(tempfile.mkdtemp(prefix="dy-podman-"))
    cmd = ["podman", "--root", str(root), "--runroot", str(runroot), "--storage-driver", "vfs"]
    yield cmd
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(runroot, ignore_errors=True)
    shutil.rmtree(runroot, ignore_errors=True)


def run(*cmd: str) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@needs_skopeo
def test_skopeo_reads_the_store_as_an_oci_layout(
    image_store: ImageStore, busybox_image: Image
) -> None:
    out = run("skopeo", "inspect", f"oci:{image_store.root}:{busybox_image.reference}")
    info = json.loads(out)
    assert info["Digest"] == busybox_image.manifest_digest
    assert info["Layers"] == [busybox_image.layers[0].digest]


@needs_skopeo
def test_skopeo_reads_exported_oci_layout(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    export_oci(image_store, ["busybox"], tmp_path / "layout")
    out = run("skopeo", "inspect", f"oci:{tmp_path / 'layout'}:{busybox_image.reference}")
    assert json.loads(out)["Digest"] == busybox_image.manifest_digest


@needs_podman
def test_podman_loads_our_docker_archive(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path, podman: list[str]
) -> None:
    image_store.tag("busybox", "example.test/tools/bb:1")
    archive = tmp_path / "bb.tar"
    save_docker_archive(image_store, ["busybox", "example.test/tools/bb:1"], archive)
    run(*podman, "load", "-i", str(archive))
    names = run(*podman, "images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert "docker.io/library/busybox:latest" in names
    assert "example.test/tools/bb:1" in names
    out = run(*podman, "image", "inspect", "busybox:latest")
    assert json.loads(out)[0]["Config"]["Cmd"] == ["sh"]


@needs_podman
def test_podman_loads_our_oci_archive(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path, podman: list[str]
) -> None:
    export_oci(image_store, ["busybox"], tmp_path / "bb-oci.tar")
    run(*podman, "load", "-i", str(tmp_path / "bb-oci.tar"))
    out = run(*podman, "image", "inspect", "docker.io/library/busybox:latest")
    assert json.loads(out)[0]["RootFS"]["Layers"] == [busybox_image.layers[0].diff_id]


@needs_podman
def test_we_load_what_podman_saves(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path, podman: list[str]
) -> None:
    save_docker_archive(image_store, ["busybox"], tmp_path / "ours.tar")
    run(*podman, "load", "-i", str(tmp_path / "ours.tar"))
    run(*podman, "tag", "busybox:latest", "localhost/from-podman:v1")
    for fmt in ("docker-archive", "oci-archive"):
        out = tmp_path / f"{fmt}.tar"
        run(*podman, "save", "--format", fmt, "-o", str(out), "localhost/from-podman:v1")
        fresh = ImageStore(tmp_path / f"fresh-{fmt}")
        name = None if fmt == "docker-archive" else "localhost/from-podman:v1"
        [image] = load_archive(fresh, out, name=name)
        assert image.reference == "localhost/from-podman:v1"
        assert [layer.diff_id for layer in image.layers] == [
            layer.diff_id for layer in busybox_image.layers
        ]
        [root] = fresh.unpacked_layers(image)
        assert (root / "bin" / "busybox").is_file()


def test_docker_archive_round_trip(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    archive = tmp_path / "bb.tar"
    save_docker_archive(image_store, ["busybox"], archive)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        repositories = json.load(tar.extractfile("repositories"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["docker.io/library/busybox:latest"]
    assert set(manifest[0]["Layers"]) <= names
    assert "busybox" in repositories
    other = ImageStore(tmp_path / "other")
    [image] = load_archive(other, archive)
    assert image.config_digest == busybox_image.config_digest
    assert [layer.diff_id for layer in image.layers] == [
        layer.diff_id for layer in busybox_image.layers
    ]


def test_oci_layout_round_trip_keeps_digests(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    export_oci(image_store, ["busybox"], tmp_path / "layout")
    other = ImageStore(tmp_path / "other")
    [image] = import_oci(other, tmp_path / "layout")
    assert image.manifest_digest == busybox_image.manifest_digest
    assert image.reference == busybox_image.reference


def test_import_refuses_tampered_layer(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    export_oci(image_store, ["busybox"], layout)
    blob = layout / "blobs" / "sha256" / busybox_image.layers[0].digest[7:]
    blob.write_bytes(blob.read_bytes()[:-10] + b"tampered!!")
    other = ImageStore(tmp_path / "other")
    with pytest.raises(ValueError, match="hashes to"):
        import_oci(other, layout)
    assert other.list_images() == []
    assert list(other.tmp_dir.iterdir()) == []


def test_export_to_existing_directory_is_refused(
    image_store: ImageStore, busybox_image: Image, tmp_path: Path
) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ArchiveError, match="exists"):
        export_oci(image_store, ["busybox"], tmp_path / "taken")


def test_load_refuses_a_non_archive(image_store: ImageStore, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar" * 100)
    with pytest.raises(ArchiveError, match="not a directory or a tar"):
        load_archive(image_store, junk)
