"""Container root filesystems by overlayfs: image layers below, a per-container upper dir.

Layout under a container's dir: `upper/` (the container's writes), `work/` (overlayfs'
scratch), `rootfs/` (the merged mount runc uses as root), and `l/` (short links to the layer
dirs, made only when needed).

Invariants:
- Layers are given bottom to top (as images list them); overlayfs wants the top first.
- The layer dirs are never written: every change lands in `upper/`; whiteouts in the layers
  are already in overlayfs form (char device 0/0, `trusted.overlay.opaque`).
- The mount option string must fit in one page (the kernel copies at most PAGE_SIZE bytes).
  When absolute paths would not fit, the mount is made by mount(8) run from the container dir
  with short relative names `l/N` pointing at the layers (what Docker's overlay2 does with a
  chdir), which fits about 500 layers, overlayfs' own limit.
- `unmount_rootfs` is idempotent; `remove_rootfs` unmounts before deleting anything, so a
  failure never deletes through a live mount into the layers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MAX_LAYERS = 500  # overlayfs' limit on lower layers
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class RootfsError(OSError):
    """The root filesystem could not be mounted or removed."""


def overlay_options(lower: Sequence[str], upper: str, work: str) -> str:
    """Return the overlay mount options; `lower` is bottom to top, overlayfs wants top first."""
    for path in (*lower, upper, work):
        if any(c in path for c in ",:\0"):
            raise RootfsError(errno.EINVAL, f"overlay path {path!r} contains ',' ':' or NUL")
    return f"lowerdir={':'.join(reversed(lower))},upperdir={upper},workdir={work}"


def mount_rootfs(container_dir: Path, layers: Sequence[Path]) -> Path:
    """Mount the overlay of `layers` (bottom to top) at container_dir/rootfs; return it."""
    if len(layers) > MAX_LAYERS:
        raise RootfsError(errno.EINVAL, f"{len(layers)} layers: overlayfs allows {MAX_LAYERS}")
    target = container_dir / "rootfs"
    for name in ("upper", "work", "rootfs"):
        (container_dir / name).mkdir(mode=0o755, exist_ok=True)
    if not layers:
        empty = container_dir / "empty"
        empty.mkdir(exist_ok=True)
        layers = [empty]
    options = overlay_options([str(p) for p in layers], str(container_dir / "upper"),
                              str(container_dir / "work"))  # fmt: skip
    if len(options) < PAGE_SIZE:
        _mount("overlay", str(target), "overlay", options)
    else:
        _mount_with_short_names(container_dir, layers)
    return target


def _mount(source: str, target: str, fstype: str, options: str) -> None:
    rc = _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, options.encode())
    if rc != 0:
        err = ctypes.get_errno()
        raise RootfsError(err, f"mount {fstype} at {target}: {os.strerror(err)}")


def _mount_with_short_names(container_dir: Path, layers: Sequence[Path]) -> None:
    links = container_dir / "l"
    shutil.rmtree(links, ignore_errors=True)
    links.mkdir()
    for i, layer in enumerate(layers):
        os.symlink(layer, links / str(i))
    options = overlay_options([f"l/{i}" for i in range(len(layers))], "upper", "work")
    if len(options) >= PAGE_SIZE:
        raise RootfsError(errno.E2BIG, f"{len(layers)} layers do not fit one mount")
    # mount(8) in a child with cwd=container_dir: a chdir in this (threaded) process would race.
    result = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, "rootfs"],
        cwd=container_dir, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RootfsError(errno.EIO, f"mount overlay: {result.stderr.strip()}")


def is_mounted(target: Path) -> bool:
    """Return True if `target` is a mount point (per /proc/self/mountinfo)."""
    wanted = os.path.realpath(target)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            mount_point = line.split(" ")[4].replace("\\040", " ")
            if mount_point == wanted:
                return True
    return False


def unmount(target: Path) -> None:
    """Unmount `target` (lazily if busy); do nothing if it is not mounted."""
    rc = _libc.umount2(str(target).encode(), 0)
    if rc == 0:
        return
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):  # not a mount point, or gone
        return
    if err == errno.EBUSY and _libc.umount2(str(target).encode(), MNT_DETACH) == 0:
        return
    err = ctypes.get_errno() or err
    raise RootfsError(err, f"unmount {target}: {os.strerror(err)}")


def unmount_rootfs(container_dir: Path) -> None:
    """Unmount container_dir/rootfs if mounted."""
    unmount(container_dir / "rootfs")


def remove_rootfs(container_dir: Path) -> None:
    """Unmount the rootfs and delete the container dir (upper, work, links)."""
    unmount_rootfs(container_dir)
    if is_mounted(container_dir / "rootfs"):
        raise RootfsError(errno.EBUSY, f"{container_dir}/rootfs is still mounted")
    shutil.rmtree(container_dir, ignore_errors=True)
