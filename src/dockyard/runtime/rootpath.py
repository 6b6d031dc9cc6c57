"""Resolution of a path inside a root directory (a rootfs, a layer) as if chrooted there.

The one component walk behind reading a rootfs's /etc/passwd (runtime/spec.py), a build
step's COPY/ADD/WORKDIR destinations (images/builder_fs.py) and the parent directories of
layer entries (images/layers.py).

Invariants:
- Every component is looked up from an open descriptor of its parent directory, with
  O_NOFOLLOW: what the walk reaches is always a real directory below the root, never a host
  path, even if the tree changes while it walks.
- A symlink met on the way (the last component too) is read and resolved as the kernel
  would for a process chrooted in the root: an absolute target starts again at the root, and
  `..` at the root stays at the root. `..` is physical: it leaves the directory the walk is
  in, not the link that led there.
- After MAX_SYMLINK_HOPS links (40, the kernel's MAXSYMLINKS) the next one is refused with
  `SymlinkLoopError`, as Linux answers ELOOP.
- A component that exists and is not a directory ends the walk; if more components follow,
  `NotDirectoryError` (ENOTDIR). A missing component ends it too, unless the caller gives
  `make_dir`, which is called to create each missing directory in turn.
- The caller owns the descriptor in `Resolved.fd` and closes it; on an error nothing stays
  open.

Python's os functions with dir_fd are enough (openat, fstatat, readlinkat): no library
resolves paths under a root descriptor portably (openat2's RESOLVE_IN_ROOT has no binding in
the standard library, and the kernels we support vary).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_SYMLINK_HOPS = 40  # the kernel's MAXSYMLINKS: the 41st link on one walk is ELOOP
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

MakeDir = Callable[[int, str], None]
"""Creates directory `name` in the directory open as the int descriptor."""


class RootPathError(ValueError):
    """A path that cannot be resolved inside its root: args are (path, reason)."""

    @property
    def path(self) -> str:
        """Return the path as the caller gave it."""
        return str(self.args[0])

    @property
    def reason(self) -> str:
        """Return what stopped the walk, in the kernel's words (ELOOP, ENOTDIR)."""
        return str(self.args[1])

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class SymlinkLoopError(RootPathError):
    """More symlinks on one walk than the kernel follows (ELOOP)."""


class NotDirectoryError(RootPathError):
    """A component used as a directory exists and is something else (ENOTDIR)."""


@dataclass
class Resolved:
    """Where a path led: the deepest directory reached, held open, and what lay past it."""

    fd: int
    parts: list[str]
    leaf: str | None = None
    missing: list[str] = field(default_factory=list)

    def host_path(self, root: Path) -> Path:
        """Return the host path: the real directory, then the leaf or the missing names."""
        rest = [self.leaf] if self.leaf is not None else []
        rest += [name for name in self.missing if name != ".."]
        return root.joinpath(*self.parts, *rest)


def resolve_at(root_fd: int, path: str, *, make_dir: MakeDir | None = None) -> Resolved:
    """Resolve `path` below the directory open as `root_fd`, as if chrooted there.

    `fd` is the deepest directory reached and `parts` its path below the root. `leaf` is a
    last component that exists and is not a directory; `missing` the first absent component
    and all after it as written (always empty with `make_dir`).
    """
    walk = _Walk(root_fd, path)
    try:
        return walk.run(make_dir)
    except BaseException:
        walk.close()
        raise


def open_dir_at(root_fd: int, path: str, *, make_dir: MakeDir) -> int:
    """Return a descriptor of directory `path` below `root_fd`, making missing directories."""
    resolved = resolve_at(root_fd, path, make_dir=make_dir)
    if resolved.leaf is not None:
        os.close(resolved.fd)
        where = "/" + "/".join([*resolved.parts, resolved.leaf])
        raise NotDirectoryError(path, f"{where} is not a directory")
    return resolved.fd


@contextlib.contextmanager
def resolve(root: Path, path: str, *, make_dir: MakeDir | None = None) -> Iterator[Resolved]:
    """Yield `path` resolved below the directory `root`; its descriptor closes on exit."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        resolved = resolve_at(root_fd, path, make_dir=make_dir)
    finally:
        os.close(root_fd)
    try:
        yield resolved
    finally:
        os.close(resolved.fd)


def _names(path: str) -> list[str]:
    return [name for name in path.split("/") if name not in ("", ".")]


class _Walk:
    """The stack of open directories from the root down to where the walk stands."""

    def __init__(self, root_fd: int, path: str) -> None:
        self.path = path
        self.fds = [os.dup(root_fd)]
        self.parts: list[str] = []
        self.hops = 0

    def close(self) -> None:
        while self.fds:
            os.close(self.fds.pop())

    def run(self, make_dir: MakeDir | None) -> Resolved:
        pending = deque(_names(self.path))
        while pending:
            name = pending.popleft()
            if name == "..":
                self._up(1)
                continue
            st = self._lstat(name, make_dir)
            if st is None:
                return self._result(missing=[name, *pending])
            if stat.S_ISLNK(st.st_mode):
                pending.extendleft(reversed(self._follow(name)))
            elif stat.S_ISDIR(st.st_mode):
                self.fds.append(os.open(name, DIR_FLAGS, dir_fd=self.fds[-1]))
                self.parts.append(name)
            elif pending:
                where = "/" + "/".join([*self.parts, name])
                raise NotDirectoryError(self.path, f"{where} is not a directory")
            else:
                return self._result(leaf=name)
        return self._result()

    def _lstat(self, name: str, make_dir: MakeDir | None) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fds[-1], follow_symlinks=False)
        except FileNotFoundError:
            if make_dir is None:
                return None
        with contextlib.suppress(FileExistsError):  # made meanwhile: look at what is there
            make_dir(self.fds[-1], name)
        return os.stat(name, dir_fd=self.fds[-1], follow_symlinks=False)

    def _follow(self, name: str) -> list[str]:
        self.hops += 1
        if self.hops > MAX_SYMLINK_HOPS:
            raise SymlinkLoopError(self.path, "too many levels of symbolic links")
        target = os.readlink(name, dir_fd=self.fds[-1])
        if target.startswith("/"):
            self._up(len(self.parts))
        return _names(target)

    def _up(self, levels: int) -> None:
        for _ in range(min(levels, len(self.parts))):
            os.close(self.fds.pop())
            self.parts.pop()

    def _result(self, leaf: str | None = None, missing: list[str] | None = None) -> Resolved:
        fd = self.fds.pop()
        self.close()
        return Resolved(fd, self.parts, leaf, missing or [])
