"""COPY/ADD/WORKDIR file work in a step rootfs: writes follow the image's links inside it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.images import builder_fs as fs
from dockyard.images.builder_fs import BuildFsError, Ownership

pytestmark = pytest.mark.unit


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """A step rootfs holding one file, /etc/hostname."""
    etc = tmp_path / "rootfs" / "etc"
    etc.mkdir(parents=True)
    (etc / "hostname").write_text("image\n")
    return etc.parent


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def tight_umask() -> Iterator[None]:
    old = os.umask(0o077)
    yield
    os.umask(old)


def owner_ids() -> tuple[int, int]:
    """Ids a chown can really change to: any as root, one's own otherwise."""
    return (1234, 5678) if os.geteuid() == 0 else (os.getuid(), os.getgid())


def test_create_makes_missing_parents_0755_with_the_owner(rootfs: Path, tight_umask: None) -> None:
    uid, gid = owner_ids()
    target = fs.resolve_in_rootfs(rootfs, "/srv/app/data", create=True, owner=Ownership(uid, gid))
    assert target == rootfs / "srv" / "app" / "data"
    for made in (rootfs / "srv", rootfs / "srv" / "app", target):
        st = os.lstat(made)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
        assert (st.st_uid, st.st_gid) == (uid, gid)


def test_create_through_an_absolute_link_stays_inside(rootfs: Path, outside: Path) -> None:
    os.symlink(str(outside), rootfs / "app")
    fs.write_file(rootfs, "/app/conf/x.txt", b"data", Ownership(*owner_ids()), 0o644)
    assert list(outside.iterdir()) == []
    inside = rootfs.joinpath(*outside.parts[1:], "conf", "x.txt")
    assert inside.read_bytes() == b"data"


def test_missing_path_without_create_is_absent(rootfs: Path) -> None:
    os.symlink("/nowhere", rootfs / "dangling")
    assert fs.resolve_in_rootfs(rootfs, "/dangling/x") == rootfs / "nowhere" / "x"
    assert not fs.resolve_in_rootfs(rootfs, "/missing/../etc").exists()
    assert not (rootfs / "nowhere").exists()


def test_file_on_the_way_is_a_clear_error(rootfs: Path) -> None:
    with pytest.raises(BuildFsError, match="/etc/hostname/x: /etc/hostname is not a directory"):
        fs.resolve_in_rootfs(rootfs, "/etc/hostname/x", create=True)
    with pytest.raises(BuildFsError, match="WORKDIR /etc/hostname: exists and is not a directory"):
        fs.make_workdir(rootfs, "/etc/hostname")


def test_link_loop_is_a_clear_error(rootfs: Path) -> None:
    os.symlink("/b", rootfs / "a")
    os.symlink("/a", rootfs / "b")
    with pytest.raises(BuildFsError, match="/a/x: too many levels of symbolic links"):
        fs.resolve_in_rootfs(rootfs, "/a/x", create=True)
    assert sorted(p.name for p in rootfs.iterdir()) == ["a", "b", "etc"]
