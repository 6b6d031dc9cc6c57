"""Build and registry figures: `.venv/bin/python bench/bench_build.py [--files N] [--layer-mb M]`.

Prints:
- build time of a busybox-based image with 5 steps, cold (no cache) and with a full cache hit;
- cache-hit rebuild of a context of 10,000 files (COPY . /ctx), after the cold build;
- push and pull throughput to a local docker-registry (Debian's, on loopback) with dockyard's
  client, against skopeo copying the same image to and from the same registry in the same run.

Needs root (RUN steps run in runc over overlayfs). Everything lives in a temp dir that is
removed at the end; the registry is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from dockyard.images.archive import export_oci
from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.builder import Builder, BuildOptions
from dockyard.images.registry_client import RegistryClient
from dockyard.images.store import Image, ImageStore

FIVE_STEPS = """\
FROM busybox
ENV GREETING=hello
WORKDIR /app
COPY payload.txt ./
RUN echo "$GREETING" > greeting && cat payload.txt >> greeting
RUN sort greeting > sorted
"""


def build(store: ImageStore, context: Path, tag: str, no_cache: bool = False) -> tuple[
        float, Image]:
    """Build the context; return (seconds, image)."""
    options = BuildOptions(context, tags=[tag], no_cache=no_cache,
                           runc_root=store.data_dir / "runc")  # fmt: skip
    started = time.perf_counter()
    image = asyncio.run(Builder(store, options).build())
    return time.perf_counter() - started, image


def bench_five_steps(root: Path, repeat: int) -> None:
    store = ImageStore(root / "five")
    bootstrap_busybox(store)
    context = root / "five-ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(FIVE_STEPS)
    (context / "payload.txt").write_text("payload\n")
    cold = [build(store, context, "five:1", no_cache=True)[0] for _ in range(repeat)]
    warm = [build(store, context, "five:1")[0] for _ in range(repeat)]
    print(f"5-step busybox build, cold (no cache):  median {statistics.median(cold):.3f}s "
          f"over {repeat} runs")
    print(f"5-step busybox build, full cache hit:   median {statistics.median(warm):.3f}s "
          f"over {repeat} runs")


def bench_big_context(root: Path, files: int, repeat: int) -> None:
    store = ImageStore(root / "ctx")
    bootstrap_busybox(store)
    context = root / "big-ctx"
    for i in range(files):
        directory = context / f"d{i // 100:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:05d}.txt").write_text(f"file {i}\n")
    (context / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\nRUN ls /ctx | wc -l\n")
    cold, _ = build(store, context, "big:1")
    warm = [build(store, context, "big:1")[0] for _ in range(repeat)]
    print(f"{files}-file context, cold build:        {cold:.3f}s")
    print(f"{files}-file context, cache-hit rebuild: median {statistics.median(warm):.3f}s "
          f"over {repeat} runs")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = root / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {root / 'registry'}\nhttp:\n"
                      f"  addr: 127.0.0.1:{port}\n")  # fmt: skip
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("docker-registry did not start")


def timed(fn: object, *args: object) -> float:
    started = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - started


def bench_registry(root: Path, layer_mb: int) -> None:
    store = ImageStore(root / "reg-store")
    bootstrap_busybox(store)
    context = root / "reg-ctx"
    context.mkdir()
    (context / "blob.bin").write_bytes(os.urandom(layer_mb << 20))  # incompressible
    (context / "Dockerfile").write_text("FROM busybox\nCOPY blob.bin /blob.bin\n")
    _, image = build(store, context, "payload:1")
    size_mb = image.size / 1e6
    proc, host = start_registry(root)
    try:
        ours = f"{host}/ours/payload:1"
        store.tag("payload:1", ours)
        push = timed(lambda: asyncio.run(RegistryClient().push(store, ours)))
        pulled = ImageStore(root / "pulled")
        pull = timed(lambda: asyncio.run(RegistryClient().pull(pulled, ours)))
        layout = root / "layout"
        export_oci(store, ["payload:1"], layout)
        src = f"oci:{layout}:docker.io/library/payload:1"
        sk_push = timed(subprocess.run, ["skopeo", "copy", "-q", "--dest-tls-verify=false", src,
                                         f"docker://{host}/skopeo/payload:1"])
        sk_pull = timed(subprocess.run, ["skopeo", "copy", "-q", "--src-tls-verify=false",
                                         f"docker://{host}/skopeo/payload:1",
                                         f"oci:{root / 'skopeo-out'}:x"])  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"registry push of a {size_mb:.1f} MB image: dockyard {size_mb / push:7.1f} MB/s "
          f"({push:.2f}s)   skopeo {size_mb / sk_push:7.1f} MB/s ({sk_push:.2f}s)")
    print(f"registry pull of a {size_mb:.1f} MB image: dockyard {size_mb / pull:7.1f} MB/s "
          f"({pull:.2f}s)   skopeo {size_mb / sk_pull:7.1f} MB/s ({sk_pull:.2f}s)")
    print("  (dockyard's pull includes storing the image: diff id check of every layer)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--layer-mb", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["steps", "context", "registry"], default=None,
                        help="run one part only")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        if args.only in (None, "steps"):
            bench_five_steps(root, args.repeat)
        if args.only in (None, "context"):
            bench_big_context(root, args.files, args.repeat)
        if args.only in (None, "registry"):
            bench_registry(root, args.layer_mb)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
