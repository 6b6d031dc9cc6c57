"""Image store figures: bootstrap, blob writes, lookups, layer unpacking, save and load.

Run: .venv/bin/python bench/bench_images.py [--runs N] [--files N]
Uses temporary data dirs under /var/tmp (a disk, like /var/lib/dockyard) and removes them.
The Debian figure appears when the test cache holds a debootstrap'ed rootfs
(/var/tmp/dockyard-test-cache/debian-bookworm-minbase.tar.gz, made by the slow test).
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dockyard.images import bootstrap as bootstrap_module  # noqa: E402
from dockyard.images.archive import load_archive, save_docker_archive  # noqa: E402
from dockyard.images.bootstrap import bootstrap_busybox  # noqa: E402
from dockyard.images.oci import OCI_LAYER_GZIP  # noqa: E402
from dockyard.images.store import ImageStore  # noqa: E402

DEBIAN_CACHE = Path("/var/tmp/dockyard-test-cache/debian-bookworm-minbase.tar.gz")


@contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="dy-bench-images."))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(name: str, samples: list[float], unit: str = "ms") -> None:
    scale = 1000.0 if unit == "ms" else 1.0
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{name:<44} median {statistics.median(samples) * scale:9.2f} {unit}"
          f"   p99 {p99 * scale:9.2f} {unit}   (n={len(samples)})")


def bench_busybox(runs: int) -> None:
    cold, unpack = [], []
    for _ in range(runs):
        with scratch() as d:
            bootstrap_module._busybox_layer.cache_clear()
            store = ImageStore(d)
            cold.append(timed(lambda s=store: bootstrap_busybox(s)))
            image = store.resolve("busybox")
            unpack.append(timed(lambda s=store, i=image: s.unpacked_layers(i)))
    report("busybox bootstrap (new store, cold)", cold)
    report("busybox layer unpack (first use)", unpack)


def bench_lookups(runs: int) -> None:
    with scratch() as d:
        store = ImageStore(d)
        bootstrap_busybox(store)
        tags = [timed(lambda i=i: store.tag("busybox", f"app-{i}:v1")) for i in range(100)]
        report("tag (index.json rewrite under flock)", tags)
        resolve = [timed(lambda i=i: store.resolve(f"app-{i % 100}:v1")) for i in range(runs * 5)]
        report("resolve by name (101 images)", resolve)
        image = store.resolve("busybox")
        store.unpacked_layers(image)
        again = [timed(lambda: store.unpacked_layers(image)) for _ in range(runs * 5)]
        report("unpacked_layers when already unpacked", again)
        listing = [timed(store.list_images) for _ in range(runs)]
        report("list_images (101 images)", listing)


def bench_blobs() -> None:
    data = os.urandom(64 << 20)
    with scratch() as d:
        store = ImageStore(d)
        seconds = timed(lambda: store.put_blob(data))
        print(f"{'put_blob 64 MiB (hash + fsync + rename)':<44} {64 / seconds:9.1f} MiB/s")
        digest = store.put_blob(data)

        def read_all() -> None:
            with store.open_blob(digest) as f:
                while f.read(1 << 20):
                    pass

        seconds = timed(read_all)
        print(f"{'open_blob read 64 MiB (verified)':<44} {64 / seconds:9.1f} MiB/s")


def synthetic_layer(files: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for i in range(files):
            info = tarfile.TarInfo(f"d{i % 100}/f{i}")
            payload = os.urandom(4096)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(raw.getvalue(), compresslevel=1)


def bench_unpack(files: int) -> None:
    blob_path = DEBIAN_CACHE if DEBIAN_CACHE.is_file() else None
    label = "debian:bookworm minbase" if blob_path else f"synthetic {files} x 4 KiB files"
    with scratch() as d:
        store = ImageStore(d)
        layer = store.put_layer(blob_path or synthetic_layer(files), OCI_LAYER_GZIP)
        _, size = store.layer_info(layer.digest)
        seconds = timed(lambda: store.unpack_layer(layer))
        entries = sum(1 for _ in store.layer_path(layer.diff_id).rglob("*"))
        print(f"{'unpack ' + label:<44} {seconds:9.2f} s    {size / seconds / 2**20:7.1f} MiB/s"
              f"   {entries / seconds:8.0f} entries/s ({entries} entries)")


def bench_archive(runs: int) -> None:
    save, load = [], []
    with scratch() as d:
        store = ImageStore(d / "a")
        bootstrap_busybox(store)
        for i in range(runs):
            out = d / f"bb{i}.tar"
            save.append(timed(lambda o=out: save_docker_archive(store, ["busybox"], o)))
            target = ImageStore(d / f"b{i}")
            load.append(timed(lambda o=out, t=target: load_archive(t, o)))
    report("save busybox (docker save format)", save)
    report("load busybox (docker save format)", load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args()
    bench_busybox(args.runs)
    bench_lookups(args.runs)
    bench_blobs()
    bench_archive(max(3, args.runs // 4))
    bench_unpack(args.files)


if __name__ == "__main__":
    main()
