"""Overlayfs root filesystems: layer order, whiteouts, copy-up, many layers, clean removal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.runtime.rootfs import (
    PAGE_SIZE,
    RootfsError,
    is_mounted,
    mount_rootfs,
    remove_rootfs,
)

pytestmark = pytest.mark.integration


def make_layer(root: Path, name: str, files: dict[str, str]) -> Path:
    layer = root / name
    layer.mkdir(parents=True)
    for rel, content in files.items():
        path = layer / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return layer


def test_layers_stack_top_wins_and_writes_go_to_upper(tmp_path: Path) -> None:
    bottom = make_layer(tmp_path, "bottom", {"a": "bottom", "b": "bottom", "dir/x": "x"})
    top = make_layer(tmp_path, "top", {"a": "top"})
    os.mknod(top / "b", 0o600 | 0o020000, os.makedev(0, 0))  # overlayfs whiteout of b
    container = tmp_path / "c1"
    container.mkdir()
    rootfs = mount_rootfs(container, [bottom, top])
    try:
        assert (rootfs / "a").read_text() == "top"
        assert not (rootfs / "b").exists()
        (rootfs / "dir" / "x").write_text("changed")
        (rootfs / "new").write_text("new")
        assert (bottom / "dir" / "x").read_text() == "x"  # layers are never written
        assert (container / "upper" / "new").read_text() == "new"
    finally:
        remove_rootfs(container)
    assert not is_mounted(rootfs)
    assert not container.exists()
    assert (bottom / "a").read_text() == "bottom"


def test_many_long_layer_paths_exceed_a_page_and_still_mount(tmp_path: Path) -> None:
    deep = tmp_path / ("long-layer-directory-name-" * 3)
    layers = [make_layer(deep, f"layer-{i:04d}", {f"f{i}": str(i), "top": str(i)})
              for i in range(120)]  # fmt: skip
    assert sum(len(str(p)) + 1 for p in layers) > PAGE_SIZE
    container = tmp_path / "c2"
    container.mkdir()
    rootfs = mount_rootfs(container, layers)
    try:
        assert (rootfs / "f0").read_text() == "0"
        assert (rootfs / "f119").read_text() == "119"
        assert (rootfs / "top").read_text() == "119"  # the last (top) layer wins
    finally:
        remove_rootfs(container)
    assert not is_mounted(rootfs) and not container.exists()


def test_bad_layer_path_refused_and_nothing_mounted(tmp_path: Path) -> None:
    container = tmp_path / "c3"
    container.mkdir()
    with pytest.raises(RootfsError, match="contains"):
        mount_rootfs(container, [tmp_path / "a,upperdir=/etc"])
    with pytest.raises(RootfsError, match="mount overlay"):
        mount_rootfs(container, [tmp_path / "missing"])
    assert not is_mounted(container / "rootfs")
    remove_rootfs(container)
    remove_rootfs(container)  # idempotent
