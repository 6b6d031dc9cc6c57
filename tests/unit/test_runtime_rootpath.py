"""The chrooted path walk: links stay inside the root, loops end as the kernel ends them."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.runtime.rootpath import (
    MAX_SYMLINK_HOPS,
    NotDirectoryError,
    RootPathError,
    SymlinkLoopError,
    open_dir_at,
    resolve,
    resolve_at,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small rootfs: /etc/passwd, /usr/bin/sh, /bin -> usr/bin."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (rootfs / "usr" / "bin").mkdir(parents=True)
    (rootfs / "usr" / "bin" / "sh").write_text("#!")
    os.symlink("usr/bin", rootfs / "bin")
    return rootfs


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory next to the root that no walk may reach."""
    (tmp_path / "outside").mkdir()
    return tmp_path / "outside"


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_fd_leak() -> Iterator[None]:
    before = open_fds()
    yield
    assert open_fds() <= before, "the walk left descriptors open"


def where(root: Path, path: str) -> Path:
    with resolve(root, path) as found:
        return found.host_path(root)


def test_plain_path_and_relative_link(root: Path) -> None:
    with resolve(root, "/bin/sh") as found:
        assert found.parts == ["usr", "bin"] and found.leaf == "sh" and not found.missing
        sh = os.open("sh", os.O_RDONLY, dir_fd=found.fd)
        assert os.read(sh, 2) == b"#!"
        os.close(sh)
    assert where(root, "usr/./bin//") == root / "usr" / "bin"
    assert where(root, "/") == root


def test_absolute_link_starts_again_at_the_root(root: Path, outside: Path) -> None:
    (outside / "secret").write_text("host secret")
    os.symlink(str(outside), root / "etc" / "escape")  # /tmp/.../outside on the host
    with resolve(root, "/etc/escape/secret") as found:
        assert found.missing == [*outside.parts[1:], "secret"]
    assert where(root, "/etc/escape/secret") == root.joinpath(*outside.parts[1:], "secret")
    os.symlink("/etc", root / "usr" / "etc")
    assert where(root, "/usr/etc/passwd") == root / "etc" / "passwd"


def test_dotdot_past_the_root_stays_at_the_root(root: Path, outside: Path) -> None:
    assert where(root, "/../../../etc/passwd") == root / "etc" / "passwd"
    (outside / "secret").write_text("host secret")
    os.symlink("../../../../../../outside/secret", root / "etc" / "up")
    with resolve(root, "/etc/up") as found:
        assert found.parts == [] and found.missing == ["outside", "secret"]


def test_dotdot_after_a_link_leaves_the_target_not_the_link(root: Path) -> None:
    # /bin -> usr/bin, so /bin/.. is /usr (as the kernel does), not /
    assert where(root, "/bin/../bin/sh") == root / "usr" / "bin" / "sh"
    with resolve(root, "/bin/..") as found:
        assert found.parts == ["usr"] and found.leaf is None


def test_symlink_loop_is_eloop(root: Path) -> None:
    os.symlink("b", root / "a")
    os.symlink("/a", root / "b")
    with pytest.raises(SymlinkLoopError, match="/a/x: too many levels of symbolic links"):
        where(root, "/a/x")
    os.symlink("self", root / "self")
    with pytest.raises(SymlinkLoopError):
        where(root, "self")


def chain(directory: Path, links: int) -> Path:
    """Make l0 -> l1 -> ... -> target: `links` symlinks on the way to a file."""
    (directory / "target").write_text("end")
    for i in range(links):
        nxt = f"l{i + 1}" if i + 1 < links else "target"
        os.symlink(nxt, directory / f"l{i}")
    return directory / "l0"


@pytest.mark.parametrize("links", [MAX_SYMLINK_HOPS, MAX_SYMLINK_HOPS + 1])
def test_hop_limit_is_the_kernels(tmp_path: Path, links: int) -> None:
    rootfs = tmp_path / "chain"
    rootfs.mkdir()
    start = chain(rootfs, links)
    try:
        os.stat(start)  # the kernel's own answer for the same chain
        kernel_loops = False
    except OSError as e:
        assert e.errno == errno.ELOOP
        kernel_loops = True
    assert kernel_loops == (links > MAX_SYMLINK_HOPS)
    if kernel_loops:
        with pytest.raises(SymlinkLoopError):
            where(rootfs, "/l0")
    else:
        assert where(rootfs, "/l0") == rootfs / "target"


def test_dangling_link_reports_what_is_missing(root: Path) -> None:
    os.symlink("/nowhere/deep", root / "etc" / "dangling")
    with resolve(root, "/etc/dangling/../x") as found:
        assert found.parts == [] and found.leaf is None
        assert found.missing == ["nowhere", "deep", "..", "x"]
    assert where(root, "/etc/dangling") == root / "nowhere" / "deep"
    assert not (root / "nowhere").exists()


def test_file_used_as_directory_is_enotdir(root: Path) -> None:
    with pytest.raises(NotDirectoryError, match=r"/etc/passwd/x: /etc/passwd is not a directory"):
        where(root, "/etc/passwd/x")
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(NotDirectoryError, match="/etc/passwd is not a directory"):
            open_dir_at(root_fd, "etc/passwd", make_dir=lambda fd, name: None)
    finally:
        os.close(root_fd)


def test_make_dir_creates_missing_parents_inside(root: Path, outside: Path) -> None:
    made: list[str] = []

    def make_dir(dir_fd: int, name: str) -> None:
        made.append(name)
        os.mkdir(name, 0o700, dir_fd=dir_fd)

    os.symlink(str(outside), root / "app")  # absolute: /tmp/.../outside inside the root
    with resolve(root, "/app/a/b", make_dir=make_dir) as found:
        assert not found.missing and found.leaf is None
        assert found.parts == [*outside.parts[1:], "a", "b"]
    assert made == [*outside.parts[1:], "a", "b"]
    assert root.joinpath(*outside.parts[1:], "a", "b").is_dir()
    assert list(outside.iterdir()) == []


def test_make_dir_that_makes_nothing_is_an_error(root: Path) -> None:
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileNotFoundError):
            resolve_at(root_fd, "/new", make_dir=lambda fd, name: None)
    finally:
        os.close(root_fd)


def test_errors_are_value_errors_naming_the_path(root: Path) -> None:
    os.symlink("loop", root / "loop")
    with pytest.raises(RootPathError) as info:
        where(root, "/loop/etc")
    assert info.value.path == "/loop/etc" and isinstance(info.value, ValueError)
