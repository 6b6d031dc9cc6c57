"""A build step's layer: the overlayfs upper dir written as a reproducible OCI layer.

overlayfs already records a step's changes in its upper dir: added and changed files as
themselves, deletions as whiteouts (a 0/0 character device) and replaced directories as
opaque dirs (xattr trusted.overlay.opaque=y). This module writes that dir as an OCI layer
tar, turning whiteouts into `.wh.NAME` entries and opaque dirs into `.wh..wh..opq`.

Invariants (reproducibility: same tree -> same bytes -> same digests):
- entries are sorted by name, depth first; every mtime is the build's SOURCE_DATE_EPOCH;
  user and group names are empty (numeric ids are kept); PAX format; hard links inside the
  layer stay hard links to the first name met;
- gzip with mtime 0, no file name in its header and a fixed level;
- `trusted.*` xattrs are never written (they would forge overlay metadata in the layer);
  of the others only `security.capability` (file capabilities) is kept.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

OPAQUE_XATTR = "trusted.overlay.opaque"
CAPABILITY_XATTR = "security.capability"
GZIP_LEVEL = 6


@dataclass(frozen=True)
class WrittenLayer:
    """A layer blob written to a file: its digest, diff id and compressed size."""

    path: Path
    digest: str
    diff_id: str
    size: int
    entries: int


class _HashingWriter:
    """A write-only stream that hashes and counts what it passes on."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.count += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def write_layer(upper: Path, out_path: Path, mtime: int = 0) -> WrittenLayer | None:
    """Write the upper dir as a gzip OCI layer at `out_path`; None if it holds no change."""
    if not any(os.scandir(upper)):
        return None
    with open(out_path, "wb") as raw:
        compressed = _HashingWriter(raw)
        gzip_target = cast(IO[bytes], compressed)
        with gzip.GzipFile(filename="", mode="wb", fileobj=gzip_target, mtime=0,
                           compresslevel=GZIP_LEVEL) as gz:  # fmt: skip
            plain = _HashingWriter(cast(IO[bytes], gz))
            with tarfile.open(fileobj=plain, mode="w|",  # type: ignore[call-overload]
                              format=tarfile.PAX_FORMAT) as tar:  # fmt: skip
                writer = _TreeWriter(tar, mtime)
                writer.add_tree(upper, "")
        raw.flush()
        os.fsync(raw.fileno())
    return WrittenLayer(
        out_path,
        "sha256:" + compressed.hash.hexdigest(),
        "sha256:" + plain.hash.hexdigest(),
        compressed.count,
        writer.entries,
    )


class _TreeWriter:
    def __init__(self, tar: tarfile.TarFile, mtime: int) -> None:
        self.tar = tar
        self.mtime = mtime
        self.entries = 0
        self.links: dict[tuple[int, int], str] = {}

    def add_tree(self, directory: Path, prefix: str) -> None:
        with os.scandir(directory) as it:
            names = sorted(entry.name for entry in it)
        for name in names:
            path = directory / name
            member = f"{prefix}{name}"
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                self._add(self._info(f"{prefix}.wh.{name}", st, tarfile.REGTYPE, mode=0o644))
                continue
            if stat.S_ISDIR(st.st_mode):
                self._add(self._info(member, st, tarfile.DIRTYPE))
                if _xattr(path, OPAQUE_XATTR) == b"y":
                    self._add(self._info(f"{member}/.wh..wh..opq", st, tarfile.REGTYPE,
                                         mode=0o644))  # fmt: skip
                self.add_tree(path, member + "/")
            else:
                self._add_file(path, member, st)

    def _add_file(self, path: Path, member: str, st: os.stat_result) -> None:
        if stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                info = self._info(member, st, tarfile.LNKTYPE)
                info.linkname = self.links[key]
                self._add(info)
                return
            self.links[key] = member
            info = self._info(member, st, tarfile.REGTYPE)
            info.size = st.st_size
            capability = _xattr(path, CAPABILITY_XATTR)
            if capability is not None:
                # File capabilities (ping's cap_net_raw) travel as a PAX xattr, as Docker's do.
                info.pax_headers = {f"SCHILY.xattr.{CAPABILITY_XATTR}":
                                    capability.decode("utf-8", "surrogateescape")}
            with open(path, "rb") as f:
                self._add(info, f)
        elif stat.S_ISLNK(st.st_mode):
            info = self._info(member, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(path)
            self._add(info)
        elif stat.S_ISFIFO(st.st_mode):
            self._add(self._info(member, st, tarfile.FIFOTYPE))
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            kind = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            info = self._info(member, st, kind)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self._add(info)
        # sockets are not representable in a tar and are dropped, as Docker does

    def _info(self, name: str, st: os.stat_result, kind: bytes,
              mode: int | None = None) -> tarfile.TarInfo:  # fmt: skip
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode) if mode is None else mode
        info.uid, info.gid = (st.st_uid, st.st_gid) if mode is None else (0, 0)
        info.uname = info.gname = ""
        info.mtime = self.mtime
        return info

    def _add(self, info: tarfile.TarInfo, fileobj: IO[bytes] | None = None) -> None:
        self.entries += 1
        self.tar.addfile(info, fileobj)


def _xattr(path: Path, name: str) -> bytes | None:
    with contextlib.suppress(OSError):
        return os.getxattr(path, name, follow_symlinks=False)
    return None
