"""File work of build steps inside a mounted step rootfs: COPY, ADD, WORKDIR.

Every container path is resolved component by component as if chrooted in the rootfs
(runtime/rootpath.py): a symlink in the image (absolute or relative) leads back inside it,
never to the host. Files are created with O_NOFOLLOW after an existing entry of the same
name is removed, so a link planted in the image cannot redirect a write.

Invariants: a directory the step creates gets the --chown owner (root otherwise) and mode
0755; copied entries keep their permission bits unless --chmod is given; sources from the
context are owned by root unless --chown (Docker's rule), sources from another stage keep
their owners.
"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import lzma
import os
import posixpath
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dockyard.images.layers import extract_layer
from dockyard.runtime.rootpath import RootPathError, resolve
from dockyard.runtime.spec import SpecError, read_rootfs_file, resolve_user

COPY_CHUNK = 1 << 20


class BuildFsError(ValueError):
    """A COPY/ADD/WORKDIR the step cannot carry out in the rootfs."""


@dataclass(frozen=True)
class Ownership:
    """Who owns what a step writes (None: keep the source's), and --chmod bits."""

    uid: int | None = 0
    gid: int | None = 0
    chmod: int | None = None


def parse_chmod(text: str) -> int:
    """Return --chmod's octal mode, refusing anything else."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise BuildFsError(f"--chmod={text}: give an octal mode such as 755") from None
    if not 0 <= mode <= 0o7777:
        raise BuildFsError(f"--chmod={text}: mode out of range")
    return mode


def resolve_chown(rootfs: Path, spec: str) -> tuple[int, int]:
    """Return (uid, gid) for --chown user[:group], names looked up in the rootfs."""
    passwd = read_rootfs_file(rootfs, "/etc/passwd")
    group = read_rootfs_file(rootfs, "/etc/group")
    try:
        user = resolve_user(spec if ":" in spec or not spec.isdigit() else f"{spec}:{spec}",
                            passwd, group)  # fmt: skip
    except SpecError as e:
        raise BuildFsError(f"--chown={spec}: {e}") from e
    return user.uid, user.gid


def resolve_in_rootfs(rootfs: Path, path: str, *, create: bool = False,
                      owner: Ownership | None = None) -> Path:  # fmt: skip
    """Return the host path of container `path`, following symlinks as if chrooted.

    With `create`, missing directories on the way (and the last component) are made, owned
    by `owner`. Without it, a missing path comes back as the real part that exists joined
    with the missing names, for the caller to find absent.
    """
    make_dir = functools.partial(_mkdir, owner) if create else None
    try:
        with resolve(rootfs, path, make_dir=make_dir) as found:
            return found.host_path(rootfs)
    except RootPathError as e:
        raise BuildFsError(str(e)) from e


def _mkdir(owner: Ownership | None, dir_fd: int, name: str) -> None:
    os.mkdir(name, 0o755, dir_fd=dir_fd)
    os.chmod(name, 0o755, dir_fd=dir_fd)  # not the umask's bits
    if owner is not None and owner.uid is not None:
        gid = owner.gid if owner.gid is not None else owner.uid
        os.chown(name, owner.uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def make_workdir(rootfs: Path, workdir: str) -> None:
    """Create the working directory (and its parents) if missing."""
    target = resolve_in_rootfs(rootfs, workdir, create=True, owner=Ownership())
    if not target.is_dir():
        raise BuildFsError(f"WORKDIR {workdir}: exists and is not a directory")


Entry = tuple[str, Path, os.stat_result]


def copy_tree(rootfs: Path, entries: Iterable[Entry], dest: str, owner: Ownership) -> None:
    """Copy a source's entries (from BuildContext.walk or walk_host) to container `dest`.

    The first entry (name '') is the source itself: a directory's contents land in `dest`,
    a file becomes `dest`.
    """
    dirs: dict[str, Path] = {}
    for rel, path, st in entries:
        container = dest if not rel else posixpath.join(dest, rel)
        if stat.S_ISDIR(st.st_mode):
            target = resolve_in_rootfs(rootfs, container, create=True, owner=owner)
            if not target.is_dir():
                raise BuildFsError(f"cannot copy a directory onto {container}: not a directory")
            _apply_meta(target, st, owner, is_link=False)
            dirs[rel] = target
            continue
        parent_rel = posixpath.dirname(rel)
        parent = dirs.get(parent_rel) if rel else None
        if parent is None:
            parent = resolve_in_rootfs(rootfs, posixpath.dirname(container) or "/", create=True,
                                       owner=owner)  # fmt: skip
        _copy_entry(path, st, parent / posixpath.basename(container), owner)


def _copy_entry(source: Path, st: os.stat_result, target: Path, owner: Ownership) -> None:
    with contextlib.suppress(FileNotFoundError):
        existing = os.lstat(target)
        if stat.S_ISDIR(existing.st_mode):
            raise BuildFsError(f"cannot copy a file onto directory {target.name}")
        os.unlink(target)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), target)
        _apply_meta(target, st, owner, is_link=True)
    elif stat.S_ISREG(st.st_mode):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, COPY_CHUNK)
            out.flush()
            # By descriptor: one path lookup per file, and no link can be swapped in.
            os.fchown(fd, *_owner_ids(st, owner))
            os.fchmod(fd, owner.chmod if owner.chmod is not None else stat.S_IMODE(st.st_mode))
    # fifos, sockets and devices in a context are skipped, as Docker does


def _owner_ids(st: os.stat_result, owner: Ownership) -> tuple[int, int]:
    uid = st.st_uid if owner.uid is None else owner.uid
    gid = st.st_gid if owner.gid is None else owner.gid
    return uid, gid


def _apply_meta(target: Path, st: os.stat_result, owner: Ownership, is_link: bool) -> None:
    os.chown(target, *_owner_ids(st, owner), follow_symlinks=False)
    if not is_link:
        os.chmod(target, owner.chmod if owner.chmod is not None else stat.S_IMODE(st.st_mode))


def walk_host(root: Path, path: Path) -> Iterator[Entry]:
    """Yield a source inside another rootfs like BuildContext.walk: itself, then contents."""
    st = os.stat(path)
    yield "", path, st
    if stat.S_ISDIR(st.st_mode):
        yield from _walk(path, "")


def _walk(path: Path, rel: str) -> Iterator[Entry]:
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        sub = posixpath.join(rel, entry.name) if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            continue  # an overlay whiteout: the file is deleted in that stage
        yield sub, Path(entry.path), st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(Path(entry.path), sub)


def write_file(rootfs: Path, dest: str, data: bytes, owner: Ownership, mode: int) -> None:
    """Write `data` as a file at container `dest` (COPY heredocs, ADD of a URL)."""
    parent = resolve_in_rootfs(rootfs, posixpath.dirname(dest) or "/", create=True, owner=owner)
    target = parent / posixpath.basename(dest)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(target).st_mode):
            raise BuildFsError(f"cannot write a file onto directory {dest}")
        os.unlink(target)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chown(target, owner.uid or 0, owner.gid or 0)
    os.chmod(target, owner.chmod if owner.chmod is not None else mode)


def archive_kind(path: Path) -> str | None:
    """Return gzip, bzip2, xz or tar if `path` is a (compressed) tar archive, else None."""
    with open(path, "rb") as f:
        head = f.read(262)
    if head.startswith(b"\x1f\x8b"):
        kind = "gzip"
    elif head.startswith(b"BZh"):
        kind = "bzip2"
    elif head.startswith(b"\xfd7zXZ\x00"):
        kind = "xz"
    elif len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    else:
        return None
    opener = gzip.open if kind == "gzip" else bz2.open if kind == "bzip2" else lzma.open
    try:
        with opener(path, "rb") as stream:
            block = stream.read(512)
    except (OSError, EOFError, lzma.LZMAError):
        return None
    return kind if len(block) == 512 and block[257:262] == b"ustar" else None


@contextlib.contextmanager
def _open_archive(path: Path, kind: str) -> Iterator[IO[bytes]]:
    if kind == "bzip2":
        with bz2.open(path, "rb") as f:
            yield f
    elif kind == "xz":
        with lzma.open(path, "rb") as f:
            yield f
    else:  # gzip and plain tar: extract_layer reads both as they are
        with open(path, "rb") as f:
            yield f


def extract_archive(rootfs: Path, archive: Path, kind: str, dest: str) -> None:
    """Unpack a local tar archive into container directory `dest` (ADD's rule)."""
    target = resolve_in_rootfs(rootfs, dest, create=True, owner=Ownership())
    with _open_archive(archive, kind) as stream:
        extract_layer(stream, target)
