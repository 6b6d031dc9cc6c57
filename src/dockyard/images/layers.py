"""Safe extraction of OCI layer tarballs into overlayfs-ready directories.

A layer (plain tar, gzip or zstd) is read as a stream, once: its compressed digest and its
diff id (digest of the uncompressed tar) are computed while extracting and checked at the
end. Invariants:

- Nothing outside `dest` is ever created, changed or followed. An entry's parent directory
  is resolved component by component from an open descriptor of `dest` with O_NOFOLLOW
  (runtime/rootpath.py, the walk the runtime and the builder use too); a symlink met on the
  way is read and resolved as if `dest` were `/` (chroot semantics), so a link planted by an
  earlier entry or an earlier layer leads back inside `dest`. `..` in an entry or link name
  is refused outright; absolute names are taken relative to `dest`.
- The final component is never followed: an existing entry is unlinked (or removed as a
  tree) and the new one created with O_CREAT|O_EXCL|O_NOFOLLOW.
- OCI whiteouts become overlayfs whiteouts: `.wh.NAME` -> a 0:0 character device NAME;
  `.wh..wh..opq` -> xattr `trusted.overlay.opaque=y` on its directory. Malformed whiteouts,
  other `.wh..wh.` names and a whiteout that clashes with an entry of the same layer are
  refused. `trusted.*` xattrs carried by the layer are dropped (they could forge overlay
  metadata).
- Device nodes from the layer are SKIPPED (and listed in the result): a container gets its
  own /dev from the runtime. FIFOs are kept.
- Mode bits (setuid/setgid/sticky included) and numeric ownership are kept as in the layer
  (ownership only when running as root).
- Decompression bombs are refused by an absolute cap on uncompressed bytes and a ratio cap
  (uncompressed / compressed, checked once past a floor); entry count is capped too.
- On any failure, a `dest` that extract_layer created is removed, so no partial layer stays.

Python's tarfile parses the stream (a well-kept parser of every tar dialect); its extraction
filters are not used because they check names, not the live tree they write into.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import zstandard

from dockyard.images.digest import CHUNK, ByteSource, DigestMismatchError, HashingReader
from dockyard.runtime.rootpath import DIR_FLAGS, RootPathError, SymlinkLoopError, open_dir_at

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
DIR_CACHE_SIZE = 256
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class LayerError(ValueError):
    """A layer that cannot be extracted: malformed, unsafe, too large or corrupt."""


class UnsafeLayerError(LayerError):
    """A layer entry that would reach outside the root or forge overlay metadata."""


class DecompressionBombError(LayerError):
    """A layer whose uncompressed size passes the configured caps."""


class LayerDigestError(LayerError, DigestMismatchError):
    """A layer whose digest or diff id differs from the expected one."""


@dataclass(frozen=True)
class ExtractLimits:
    """Caps that refuse decompression bombs; all configurable."""

    max_bytes: int = 64 << 30
    max_ratio: float = 200.0
    ratio_floor: int = 64 << 20
    max_entries: int = 2_000_000


DEFAULT_LIMITS = ExtractLimits()


@dataclass
class ExtractResult:
    """What extract_layer read and wrote."""

    digest: str
    diff_id: str
    compressed_size: int
    size: int
    entries: int = 0
    skipped: list[str] = field(default_factory=list)


def extract_layer(
    tar_stream: ByteSource,
    dest: Path,
    *,
    digest: str | None = None,
    diff_id: str | None = None,
    limits: ExtractLimits = DEFAULT_LIMITS,
) -> ExtractResult:
    """Extract a layer stream into `dest` safely, checking digest and diff id if given."""
    created = not dest.exists()
    dest.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        result = _extract(tar_stream, dest, limits)
        _check_digests(result, digest, diff_id)
        return result
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise


def _check_digests(result: ExtractResult, digest: str | None, diff_id: str | None) -> None:
    if digest is not None and result.digest != digest:
        raise LayerDigestError(f"layer blob {digest} is corrupt: content hashes to {result.digest}")
    if diff_id is not None and result.diff_id != diff_id:
        raise LayerDigestError(
            f"layer diff id mismatch: expected {diff_id}, uncompressed tar hashes to "
            f"{result.diff_id}"
        )


def measure_layer(tar_stream: ByteSource, limits: ExtractLimits = DEFAULT_LIMITS) -> ExtractResult:
    """Return the digest, diff id and sizes of a layer stream without extracting it."""
    with _streams(tar_stream, limits) as (compressed, plain):
        plain.drain()
        compressed.drain()
    return ExtractResult(compressed.digest, plain.digest, compressed.count, plain.count)


def _extract(tar_stream: ByteSource, dest: Path, limits: ExtractLimits) -> ExtractResult:
    with _streams(tar_stream, limits) as (compressed, plain):
        extractor = _Extractor(dest, limits)
        try:
            with tarfile.open(fileobj=cast(IO[bytes], plain), mode="r|") as tar:
                for member in tar:
                    extractor.add(tar, member)
            plain.drain()
            extractor.finish()
        finally:
            extractor.close()
        compressed.drain()
    return ExtractResult(
        digest=compressed.digest,
        diff_id=plain.digest,
        compressed_size=compressed.count,
        size=plain.count,
        entries=extractor.entries,
        skipped=extractor.skipped,
    )


@contextlib.contextmanager
def _streams(
    tar_stream: ByteSource, limits: ExtractLimits
) -> Iterator[tuple[HashingReader, HashingReader]]:
    """Yield (compressed, uncompressed) hashing readers over a layer stream."""
    compressed = HashingReader(tar_stream)
    head = compressed.read(4) or b""

    def check_bomb(count: int) -> None:
        _check_bomb(count, compressed.count, limits)

    try:
        with _decompressor(head, _Prefixed(head, compressed)) as plain_source:
            yield compressed, HashingReader(plain_source, on_read=check_bomb)
    except (EOFError, tarfile.ReadError, zlib.error, zstandard.ZstdError, gzip.BadGzipFile) as e:
        raise LayerError(f"layer blob is truncated or not a tar archive: {e}") from e


def _check_bomb(uncompressed: int, compressed: int, limits: ExtractLimits) -> None:
    if uncompressed > limits.max_bytes:
        raise DecompressionBombError(
            f"layer expands past the cap of {limits.max_bytes} bytes; refused"
        )
    if uncompressed > limits.ratio_floor and uncompressed > limits.max_ratio * max(compressed, 1):
        raise DecompressionBombError(
            f"layer expands more than {limits.max_ratio:g}x ({compressed} compressed bytes "
            f"gave {uncompressed}); refused as a decompression bomb"
        )


class _Prefixed:
    """Replays already-read `head` bytes, then reads on from `rest`."""

    def __init__(self, head: bytes, rest: ByteSource) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        """Read from the replayed head first, then from the rest."""
        if self._head:
            n = len(self._head) if size < 0 else min(size, len(self._head))
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._rest.read(size)


@contextlib.contextmanager
def _decompressor(head: bytes, source: ByteSource) -> Iterator[ByteSource]:
    if head.startswith(GZIP_MAGIC):
        with gzip.GzipFile(fileobj=cast(IO[bytes], source), mode="rb") as unzipped:
            yield unzipped
    elif head.startswith(ZSTD_MAGIC):
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], source), read_across_frames=True
        )
        with reader:
            yield reader
    else:
        yield source


@contextlib.contextmanager
def decompressed(stream: ByteSource) -> Iterator[ByteSource]:
    """Yield the uncompressed tar of a layer stream (gzip, zstd or plain)."""
    head = stream.read(4) or b""
    with _decompressor(head, _Prefixed(head, stream)) as plain:
        yield plain


def split_entry_name(name: str) -> list[str]:
    """Return the path components of a tar entry name, refusing any `..` component."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerError(f"layer entry {name!r} has a '..' component; refused")
    return parts


class _Extractor:
    """Applies tar members to a root directory held open by descriptor."""

    def __init__(self, dest: Path, limits: ExtractLimits) -> None:
        self.root_fd = os.open(dest, DIR_FLAGS)
        self.limits = limits
        self.entries = 0
        self.skipped: list[str] = []
        self.dir_times: list[tuple[list[str], int]] = []
        self.as_root = os.geteuid() == 0
        # Resolved parent dirs by path. An fd always names a real directory inside the root,
        # so a stale entry could only misplace files, never leak them; the cache is dropped
        # whenever anything is removed, the one way a resolved path can change meaning.
        self._dirs: dict[tuple[str, ...], int] = {}

    def close(self) -> None:
        self._forget_dirs()
        os.close(self.root_fd)

    def _forget_dirs(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """Apply one tar member under the root; a failing system call names the entry."""
        try:
            self._add(tar, member)
        except OSError as e:
            raise LayerError(f"layer entry {member.name!r}: {e.strerror or e}") from e

    def _add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise DecompressionBombError(
                f"layer has more than {self.limits.max_entries} entries; refused"
            )
        parts = split_entry_name(member.name)
        for part in parts[:-1]:
            if part.startswith(WHITEOUT_PREFIX):
                raise UnsafeLayerError(f"invalid whiteout: {member.name!r} uses one as a directory")
        if not parts:
            self._apply_root(member)
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(member, parts)
            return
        parent = self._open_dir(parts[:-1], member.name)
        try:
            self._add_entry(tar, member, parent, parts)
        finally:
            os.close(parent)

    def _add_entry(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, parts: list[str]
    ) -> None:
        base = parts[-1]
        if member.ischr() or member.isblk():
            self.skipped.append(f"{member.name} (device node; the runtime provides /dev)")
            return
        if member.issparse():
            raise LayerError(f"layer entry {member.name!r} is a sparse file; not supported")
        if member.isdir():
            self._make_dir(member, parent, parts)
        elif member.islnk():
            self._clear(parent, base, member.name)
            self._link(member, parent, base)
        elif member.issym():
            if not member.linkname:
                raise LayerError(f"layer entry {member.name!r} is a symlink with an empty target")
            self._clear(parent, base, member.name)
            os.symlink(member.linkname, base, dir_fd=parent)
            self._own(member, base, parent)
        elif member.isfifo():
            self._clear(parent, base, member.name)
            os.mkfifo(base, 0o600, dir_fd=parent)
            self._own(member, base, parent)
            os.chmod(base, stat.S_IMODE(member.mode), dir_fd=parent)
        else:
            self._clear(parent, base, member.name)
            self._write_file(tar, member, parent, base)

    def _apply_root(self, member: tarfile.TarInfo) -> None:
        if not member.isdir():
            raise UnsafeLayerError(f"layer entry {member.name!r} replaces the root with a non-dir")
        self._set_dir_meta(self.root_fd, member)
        self.dir_times.append(([], int(member.mtime)))

    def _open_dir(self, parts: list[str], entry: str) -> int:
        """Open the directory `parts` under the root as if chrooted, creating missing dirs."""
        key = tuple(parts)
        cached = self._dirs.get(key)
        if cached is None:
            if len(self._dirs) >= DIR_CACHE_SIZE:
                self._forget_dirs()
            cached = self._dirs[key] = self._resolve_dir(parts, entry)
        return os.dup(cached)

    def _resolve_dir(self, parts: list[str], entry: str) -> int:
        try:
            return open_dir_at(self.root_fd, "/".join(parts), make_dir=_mkdir)
        except SymlinkLoopError as e:
            raise UnsafeLayerError(f"layer entry {entry!r}: {e.reason}") from e
        except RootPathError as e:
            raise LayerError(f"layer entry {entry!r}: {e.reason}") from e

    def _clear(self, parent: int, base: str, entry: str, *, keep_dir: bool = False) -> bool:
        """Remove whatever is at `base` (never following it); return True if a dir was kept."""
        try:
            st = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if _is_whiteout(st):
            raise LayerError(
                f"invalid whiteout: layer entry {entry!r} clashes with a whiteout of the same "
                "name in the same layer"
            )
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(base, dir_fd=parent)
        else:
            os.unlink(base, dir_fd=parent)
        self._forget_dirs()
        return False

    def _make_dir(self, member: tarfile.TarInfo, parent: int, parts: list[str]) -> None:
        base = parts[-1]
        if not self._clear(parent, base, member.name, keep_dir=True):
            os.mkdir(base, 0o700, dir_fd=parent)
        fd = os.open(base, DIR_FLAGS, dir_fd=parent)
        try:
            self._set_dir_meta(fd, member)
        finally:
            os.close(fd)
        self.dir_times.append((parts, int(member.mtime)))

    def _set_dir_meta(self, fd: int, member: tarfile.TarInfo) -> None:
        if self.as_root:
            os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, stat.S_IMODE(member.mode))
        self._set_xattrs(fd, member)

    def _write_file(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, base: str
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(base, flags, 0o600, dir_fd=parent)
        try:
            data = tar.extractfile(member)
            if data is not None:
                while chunk := data.read(CHUNK):
                    os.write(fd, chunk)
            if self.as_root:
                os.fchown(fd, member.uid, member.gid)
            # chmod after chown: chown clears setuid/setgid bits the layer asked for.
            os.fchmod(fd, stat.S_IMODE(member.mode))
            self._set_xattrs(fd, member)
            os.utime(fd, (int(member.mtime), int(member.mtime)))
        finally:
            os.close(fd)

    def _link(self, member: tarfile.TarInfo, parent: int, base: str) -> None:
        target = split_entry_name(member.linkname)
        if not target:
            raise UnsafeLayerError(f"hardlink {member.name!r} points at the root")
        target_parent = self._open_dir(target[:-1], member.name)
        try:
            try:
                st = os.stat(target[-1], dir_fd=target_parent, follow_symlinks=False)
            except FileNotFoundError:
                raise LayerError(
                    f"hardlink {member.name!r} -> {member.linkname!r}: target not in this layer"
                ) from None
            if stat.S_ISDIR(st.st_mode) or _is_whiteout(st):
                raise LayerError(
                    f"hardlink {member.name!r} -> {member.linkname!r}: target is a directory "
                    "or a whiteout"
                )
            os.link(
                target[-1], base, src_dir_fd=target_parent, dst_dir_fd=parent,
                follow_symlinks=False,
            )
        finally:
            os.close(target_parent)

    def _own(self, member: tarfile.TarInfo, base: str, parent: int) -> None:
        if self.as_root:
            os.chown(base, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        mtime = int(member.mtime)
        os.utime(base, (mtime, mtime), dir_fd=parent, follow_symlinks=False)

    def _set_xattrs(self, fd: int, member: tarfile.TarInfo) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr.") :]
            if name.startswith("trusted."):
                self.skipped.append(f"{member.name} (xattr {name} dropped)")
                continue
            with contextlib.suppress(OSError):
                os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))

    def _whiteout(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        base = parts[-1]
        if not (member.isreg() or member.islnk()):
            raise LayerError(f"invalid whiteout {member.name!r}: not a regular file entry")
        if base == OPAQUE_WHITEOUT:
            self._opaque(member, parts[:-1])
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            raise LayerError(f"invalid whiteout {member.name!r}: reserved '.wh..wh.' name")
        hidden = base[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", "..") or hidden.startswith(WHITEOUT_PREFIX):
            raise LayerError(f"invalid whiteout {member.name!r}: names no file")
        parent = self._open_dir(parts[:-1], member.name)
        try:
            self._make_whiteout(parent, hidden, member.name)
        finally:
            os.close(parent)

    def _make_whiteout(self, parent: int, hidden: str, entry: str) -> None:
        try:
            st = os.stat(hidden, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            if _is_whiteout(st):
                return
            raise LayerError(
                f"invalid whiteout {entry!r}: {hidden!r} exists in the same layer"
            )
        try:
            os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
        except PermissionError as e:
            raise LayerError(f"whiteout {entry!r} needs root (CAP_MKNOD) to extract") from e

    def _opaque(self, member: tarfile.TarInfo, dir_parts: list[str]) -> None:
        if not dir_parts:
            raise LayerError(f"invalid whiteout {member.name!r}: opaque marker at the root")
        fd = self._open_dir(dir_parts, member.name)
        try:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        except PermissionError as e:
            raise LayerError(f"opaque whiteout {member.name!r} needs root to extract") from e
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Set directory mtimes last, since adding entries changes them."""
        for parts, mtime in reversed(self.dir_times):
            fd = self._open_strict(parts)
            if fd is None:
                continue
            try:
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)

    def _open_strict(self, parts: list[str]) -> int | None:
        """Open `parts` through real directories only; None where one is gone or a link.

        Not rootpath's walk on purpose: a directory a later entry replaced with a symlink
        must not pass its mtime on to whatever the link names.
        """
        fd = os.dup(self.root_fd)
        for comp in parts:
            try:
                next_fd = os.open(comp, DIR_FLAGS, dir_fd=fd)
            except OSError:
                os.close(fd)
                return None
            os.close(fd)
            fd = next_fd
        return fd


def _mkdir(dir_fd: int, name: str) -> None:
    os.mkdir(name, 0o755, dir_fd=dir_fd)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
