"""Chrooted path resolution figures: /etc/passwd reads, COPY destinations, layer extraction.

Run: .venv/bin/python bench/bench_rootpath.py [--calls N] [--files N] [--depth N]
Only public functions that predate runtime/rootpath.py are timed (read_rootfs_file,
resolve_in_rootfs, extract_layer), so the same script measures an older tree too.
Uses temporary dirs under /var/tmp and removes them.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dockyard.images.builder_fs import resolve_in_rootfs  # noqa: E402
from dockyard.images.layers import extract_layer  # noqa: E402
from dockyard.runtime.spec import read_rootfs_file  # noqa: E402


def per_call(fn: Callable[[], object], calls: int) -> float:
    """Return the best of three runs of `calls` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def make_rootfs(root: Path, depth: int) -> str:
    """Make /etc/passwd behind a link, and a `depth`-deep directory reached through links."""
    (root / "real" / "etc").mkdir(parents=True)
    (root / "real" / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n" * 20)
    os.symlink("/real/etc", root / "etc")
    deep = root / "usr"
    for i in range(depth):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    os.symlink("usr", root / "app")
    return "/app/" + "/".join(f"d{i}" for i in range(depth))


def layer(files: int, depth: int) -> bytes:
    """Return a tar of `files` files spread over 1,000 directories `depth` levels deep."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for i in range(files):
            parents = "/".join(f"p{(i + level) % 10}" for level in range(depth - 1))
            info = tarfile.TarInfo(f"{parents}/q{i % 1000 // 10 * 10}/f{i}")
            tar.addfile(info, io.BytesIO(b""))
    return raw.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--depth", type=int, default=6)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="dy-bench-rootpath."))
    try:
        deep = make_rootfs(scratch / "rootfs", args.depth)
        rootfs = scratch / "rootfs"
        read = per_call(lambda: read_rootfs_file(rootfs, "/etc/passwd"), args.calls)
        print(f"{'read_rootfs_file /etc/passwd (via a link)':<48} {read:8.1f} us/call")
        dest = per_call(lambda: resolve_in_rootfs(rootfs, deep, create=True), args.calls)
        print(f"{f'resolve_in_rootfs create, {args.depth} dirs + a link':<48} {dest:8.1f} us/call")
        data = layer(args.files, args.depth)
        start = time.perf_counter()
        extract_layer(io.BytesIO(data), scratch / "layer")
        seconds = time.perf_counter() - start
        label = f"extract_layer {args.files} files, {args.depth} deep"
        print(f"{label:<48} {args.files / seconds:8.0f} entries/s")
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
