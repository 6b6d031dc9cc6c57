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

import contextlib
import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
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


# -- debian ---------------------------------------------------------------------------------


def bootstrap_debian(
    store: ImageStore,
    suite: str = "bookworm",
    mirror: str | None = None,
    progress: Progress | None = None,
    cache_dir: Path | None = None,
) -> Image:
    """Make `debian:<suite>` with debootstrap --variant=minbase; return the image."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", suite):
        raise BootstrapError(f"invalid Debian suite {suite!r}: use a name like 'bookworm'")
    say = progress or (lambda line: None)
    cache = cache_dir or store.data_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"debian-{suite}-minbase.tar.gz"
    if tarball.is_file():
        say(f"using cached root filesystem {tarball}")
    else:
        mirror = mirror or apt_mirror()
        say(f"debootstrap --variant=minbase {suite} from {mirror} (takes a few minutes)")
        _build_debian_tarball(store, suite, mirror, tarball, cache / "debootstrap-debs", say)
    say("importing the layer")
    layer = store.put_layer(tarball, oci.OCI_LAYER_GZIP)
    config = _base_config(["bash"], f"debootstrap --variant=minbase {suite}")
    image = store.create_image(f"debian:{suite}", config, [layer])
    say(f"made {image.familiar()} ({image.manifest_digest})")
    return image


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """Return the machine's Debian mirror from its apt sources (deb822 or one-line)."""
    candidates: list[str] = []
    for path in sorted(sources.glob("sources.list.d/*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(_deb822_fields(stanza))
            suites = fields.get("Suites", "").split()
            # A plain suite (bookworm, not bookworm-security) marks the main archive.
            if not any("-" not in suite for suite in suites):
                continue
            candidates += fields.get("URIs", "").split()
    for path in [sources / "sources.list", *sorted(sources.glob("sources.list.d/*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                words = [w for w in line.split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb" and "-" not in words[2]:
                    candidates.append(words[1])
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _deb822_fields(stanza: str) -> Iterator[tuple[str, str]]:
    for line in stanza.splitlines():
        if line and not line.startswith(("#", " ", "\t")) and ":" in line:
            key, _, value = line.partition(":")
            yield key.strip(), value.strip()


def _build_debian_tarball(
    store: ImageStore, suite: str, mirror: str, tarball: Path, debs: Path, say: Progress
) -> None:
    if shutil.which("debootstrap") is None:
        raise BootstrapError("debootstrap not found: install the debootstrap package")
    debs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=store.tmp_dir, prefix="debootstrap."))
    try:
        target = work / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", f"--cache-dir={debs}", suite, str(target),
               mirror]
        _run_with_progress(cmd, say)
        say("packing the root filesystem as one layer")
        _clean_rootfs(target)
        _pack_rootfs(target, tarball)
    finally:
        _remove_tree_safely(work)


def _run_with_progress(cmd: list[str], say: Progress) -> None:
    tail: list[str] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                say(line)
                tail = [*tail[-19:], line]
        code = proc.wait()
    if code != 0:
        raise BootstrapError(f"{' '.join(cmd[:2])} failed (exit {code}):\n" + "\n".join(tail))


def _clean_rootfs(root: Path) -> None:
    """Empty what a container gets from its runtime or should not inherit from this host."""
    for name in EMPTY_DIRS:
        d = root / name
        if d.is_dir() and not d.is_symlink():
            for child in d.iterdir():
                _remove_tree_safely(child)
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*", "var/log/*.log"):
        for path in root.glob(pattern):
            if path.is_file() and not path.is_symlink():
                path.unlink()
    for name in ("etc/resolv.conf", "etc/hostname"):
        path = root / name
        if path.is_file() and not path.is_symlink():
            path.write_text("")


def _pack_rootfs(root: Path, tarball: Path) -> None:
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        # Device nodes are the runtime's business (it gives each container a private /dev).
        if info.ischr() or info.isblk():
            return None
        info.uname = info.gname = ""
        return info

    fd, tmp = tempfile.mkstemp(dir=tarball.parent, prefix=f".{tarball.name}.")
    try:
        with os.fdopen(fd, "wb") as raw:
            with (
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                for child in sorted(os.listdir(root)):
                    tar.add(root / child, arcname=child, filter=keep)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, tarball)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4].replace("\\040", " ")
        if point.startswith(prefix) or point == prefix[:-1]:
            mounts.append(point)
    return sorted(mounts, key=len, reverse=True)


def _remove_tree_safely(path: Path) -> None:
    """Remove `path`, first unmounting anything debootstrap left mounted inside it."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=60)
    left = _mounts_under(path)
    if left:
        raise BootstrapError(f"cannot remove {path}: still mounted: {', '.join(left)}")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
