"""busybox bootstrap end to end: a reproducible image whose unpacked layer runs busybox."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import Image, ImageStore
from tests.integration import image_fixtures

image_store = image_fixtures.image_store
busybox_image = image_fixtures.busybox_image

pytestmark = pytest.mark.integration


def test_busybox_image_has_config_and_one_layer(busybox_image: Image) -> None:
    assert busybox_image.reference == "docker.io/library/busybox:latest"
    assert busybox_image.config["config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in busybox_image.config["config"]["Env"])
    assert len(busybox_image.layers) == 1
    layer = busybox_image.layers[0]
    assert busybox_image.config["rootfs"]["diff_ids"] == [layer.diff_id]


def test_busybox_digest_is_reproducible(busybox_image: Image, tmp_path: Path) -> None:
    again = bootstrap_busybox(ImageStore(tmp_path / "other"))
    assert again.manifest_digest == busybox_image.manifest_digest


def test_unpacked_layer_is_a_runnable_rootfs(
    image_store: ImageStore, busybox_image: Image
) -> None:
    [root] = image_store.unpacked_layers(busybox_image)
    assert root == image_store.layer_path(busybox_image.layers[0].diff_id)
    assert os.readlink(root / "bin" / "sh") == "/bin/busybox"
    assert "nobody:x:65534" in (root / "etc" / "passwd").read_text()
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    out = subprocess.run(
        ["chroot", str(root), "/bin/sh", "-c", "echo hello from $(id -u)"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    assert out.strip() == "hello from 0"


def test_layers_are_unpacked_once_and_shared(
    image_store: ImageStore, busybox_image: Image
) -> None:
    [first] = image_store.unpacked_layers(busybox_image)
    marker = first / "marker-from-first-unpack"
    marker.write_text("x")
    image_store.tag("busybox", "my-busybox:1")
    [second] = image_store.unpacked_layers(image_store.resolve("my-busybox:1"))
    assert second == first and (second / "marker-from-first-unpack").exists()
