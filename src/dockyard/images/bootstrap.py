"""Base images made on this machine: busybox from busybox-static, Debian with debootstrap.

No public registry is reachable here, so every base image starts from the host:
`bootstrap_busybox` packs the host's static /bin/busybox and its applet symlinks into one
layer; `bootstrap_debian` runs debootstrap --variant=minbase against the machine's Debian
mirror and packs the result as one layer. Invariants: layers are written with fixed
timestamps, owners and order, so the same inputs give the same digests (busybox is fully
reproducible); the Debian rootfs tarball is cached under DATA_DIR/cache so a second
bootstrap needs no network; debootstrap's temporary tree is removed, never through a mount
left inside it.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from dockyard.images import oci
from dockyard.images.store import Image, ImageStore

BUSYBOX = Path("/bin/busybox")
BUSYBOX_REF = "busybox:latest"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nnobody:x:65534:\n"
# Directories a Debian rootfs keeps empty: the runtime mounts them per container.
EMPTY_DIRS = ("dev", "proc", "sys", "run", "tmp")

Progress = Callable[[str], None]


class BootstrapError(RuntimeError):
    """A base image that could not be made (missing tool, failed debootstrap)."""


# -- busybox --------------------------------------------------------------------------------


def bootstrap_busybox(store: ImageStore, busybox: Path = BUSYBOX) -> Image:
    """Make `busybox:latest` from the host's static busybox; return the image."""
    if not busybox.is_file():
        raise BootstrapError(f"{busybox} not found: install the busybox-static package")
    st = busybox.stat()
    layer_bytes = _busybox_layer(str(busybox), st.st_size, st.st_mtime_ns)
    layer = store.put_layer(layer_bytes, oci.OCI_LAYER_GZIP)
    config = _base_config(["sh"], "dockyard image bootstrap busybox")
    return store.create_image(BUSYBOX_REF, config, [layer])


@lru_cache(maxsize=4)
def _busybox_layer(busybox: str, size: int, mtime_ns: int) -> bytes:
    """Return the gzip layer for a busybox binary (cached per binary version)."""
    applets = _applets(busybox)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = {"bin", "etc", "root", "tmp", "sbin", "usr", "usr/bin", "usr/sbin", "var"}
        dirs.update(os.path.dirname(a) for a in applets)
        for d in sorted(dirs - {""}):
            mode = {"tmp": 0o1777, "root": 0o700}.get(d, 0o755)
            _add(tar, d, tarfile.DIRTYPE, mode)
        _add(tar, "etc/passwd", tarfile.REGTYPE, 0o644, PASSWD.encode())
        _add(tar, "etc/group", tarfile.REGTYPE, 0o644, GROUP.encode())
        _add(tar, "bin/busybox", tarfile.REGTYPE, 0o755, Path(busybox).read_bytes())
        for applet in sorted(applets):
            if applet != "bin/busybox":
                _add(tar, applet, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
    return _gzip(raw.getvalue())


def _applets(busybox: str) -> list[str]:
    out = subprocess.run(
        [busybox, "--list-full"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    names = [line.strip().lstrip("/") for line in out.splitlines() if line.strip()]
    return [n for n in names if n != "linuxrc"]


def _add(
    tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = ""
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.linkname = link
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _gzip(data: bytes) -> bytes:
    # mtime=0 and no file name in the gzip header keep the digest reproducible.
    return gzip.compress(data, compresslevel=6, mtime=0)


def _base_config(cmd: list[str], created_by: str) -> dict[str, Any]:
    return {
        "created": oci.EPOCH_TIMESTAMP,
        "architecture": oci.host_architecture(),
        "os": "linux",
        "config": {"Env": [DEFAULT_PATH], "Cmd": cmd},
        "history": [{"created": oci.EPOCH_TIMESTAMP, "created_by": created_by}],
    }
