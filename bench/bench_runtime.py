"""Benchmark the container runtime against bare runc and podman, then 110 networked pods.

    .venv/bin/python bench/bench_runtime.py [--runs 50] [--pods 110] [--no-podman] [--no-pods]

Part 1, one busybox container started and stopped `--runs` times, side by side and
interleaved run by run (so the three see the same machine load):
- dockyard: Runtime.create_container + start_container (conmon, runc create/start, overlayfs
  mount, spec) until the process runs; stop = stop_container(grace 0) + remove_container.
- runc (the floor): `runc run -d` of a bundle with the same spec and an overlay rootfs of the
  same layers; stop = `runc delete --force`.
- podman: `podman run -d --rootfs` of the same rootfs (no network, like the other two, which
  share one sandbox); stop = `podman rm -f -t 0`.
Part 2, `--pods` sandboxes (each its own netns, CNI address) with one container each,
created concurrently: time until all run, conmon memory, time to remove them all.
Needs root. Everything made is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import ImageStore
from dockyard.runtime import ContainerConfig, Runtime, SandboxConfig
from dockyard.runtime.rootfs import mount_rootfs, remove_rootfs

SLEEP = ["sleep", "3600"]


def summary(name: str, start: list[float], stop: list[float]) -> str:
    """Return one table row: median and p99 of start and stop, in milliseconds."""

    def p99(xs: list[float]) -> float:
        return statistics.quantiles(xs, n=100, method="inclusive")[98] if len(xs) > 1 else xs[0]

    return (f"{name:<10} start median {statistics.median(start) * 1000:7.1f} ms  "
            f"p99 {p99(start) * 1000:7.1f} ms   stop median {statistics.median(stop) * 1000:7.1f}"
            f" ms  p99 {p99(stop) * 1000:7.1f} ms")  # fmt: skip


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """Return (seconds, result) of awaiting fn()."""
    t0 = time.perf_counter()
    result = await fn()
    return time.perf_counter() - t0, result


async def run(*argv: str, detached: bool = False) -> str:
    """Run a command; return stdout or raise with its stderr.

    detached: the command leaves a process holding its stdio (`runc run -d`), so stdio goes
    to files rather than pipes we would wait on forever.
    """
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=out_f if detached else subprocess.PIPE,
            stderr=err_f,
        )  # fmt: skip
        out, _ = await proc.communicate()
        err_f.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} {argv[1]}: {err_f.read().decode().strip()}")
        return (out or b"").decode()


async def dockyard_once(rt: Runtime, sandbox_id: str, image: ContainerConfig,
                        i: int) -> tuple[float, float, dict[str, Any]]:  # fmt: skip
    """Time create+start and stop+remove of one of our containers; return its spec too."""
    cfg = ContainerConfig(name=f"b{i}", lower_dirs=image.lower_dirs,
                          image_config=image.image_config, command=SLEEP)  # fmt: skip

    async def start() -> str:
        cid = await rt.create_container(sandbox_id, cfg)
        await rt.start_container(cid)
        return cid

    took_start, cid = await timed(start)
    spec = json.loads((rt.data_dir / "containers" / cid / "config.json").read_text())

    async def stop() -> None:
        await rt.stop_container(cid, grace_seconds=0)
        await rt.remove_container(cid)

    took_stop, _ = await timed(stop)
    return took_start, took_stop, spec


def floor_bundle(base: Path, spec: dict[str, Any], rootfs: Path, cgroup_root: str) -> Path:
    """Write a bundle with our spec, a fresh network namespace and no sandbox files."""
    bundle = base / "bundle"
    bundle.mkdir(parents=True, exist_ok=True)
    spec = json.loads(json.dumps(spec))
    spec["root"]["path"] = str(rootfs)
    spec["mounts"] = [m for m in spec["mounts"] if m["type"] != "bind"]
    spec["linux"]["namespaces"] = [{"type": n["type"]} for n in spec["linux"]["namespaces"]]
    spec["linux"]["cgroupsPath"] = f"{cgroup_root}/floor"
    spec.pop("hostname", None)
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "uts"]
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


async def runc_once(runc_root: Path, bundle: Path, i: int) -> tuple[float, float]:
    """Time `runc run -d` and `runc delete --force` of the bundle."""
    cid = f"floor-{i}-{secrets.token_hex(4)}"
    argv = ["runc", "--root", str(runc_root)]
    took_start, _ = await timed(lambda: run(*argv, "run", "-d", "--bundle", str(bundle), cid,
                                            detached=True))  # fmt: skip
    took_stop, _ = await timed(lambda: run(*argv, "delete", "--force", cid))
    return took_start, took_stop


def podman_argv(base: Path) -> list[str]:
    """Return podman's argv prefix with its own storage under `base`."""
    return ["podman", "--root", str(base / "root"), "--runroot", str(base / "runroot"),
            "--cgroup-manager", "cgroupfs", "--events-backend", "none"]  # fmt: skip


async def podman_once(base: Path, rootfs: Path) -> tuple[float, float]:
    """Time `podman run -d --rootfs` and `podman rm -f -t 0` of the rootfs."""
    podman = podman_argv(base)
    took_start, out = await timed(lambda: run(
        *podman, "run", "-d", "--network", "none", "--ulimit", "nofile=20000:20000",
        "--ulimit", "nproc=4096:4096", "--rootfs", str(rootfs), *SLEEP))  # fmt: skip
    took_stop, _ = await timed(lambda: run(*podman, "rm", "-f", "-t", "0", out.strip()))
    return took_start, took_stop


async def bench_start_stop(rt: Runtime, template: ContainerConfig, base: Path,
                           runs: int, with_podman: bool) -> None:  # fmt: skip
    """Run the three side by side, interleaved run by run so they share the machine's load."""
    sb = await rt.create_sandbox(SandboxConfig(pod_uid="bench", name="bench"))
    _, _, spec = await dockyard_once(rt, sb.id, template, -1)  # warm-up; gives the spec
    floor_dir, podman_dir = base / "floor", base / "podman"
    floor_dir.mkdir()
    bundle = floor_bundle(floor_dir, spec, mount_rootfs(floor_dir, template.lower_dirs),
                          rt.cgroup_root)  # fmt: skip
    if with_podman:
        podman_dir.mkdir()
        p_rootfs = mount_rootfs(podman_dir, template.lower_dirs)
    times: dict[str, tuple[list[float], list[float]]] = {}
    for i in range(runs):
        results = {"dockyard": (await dockyard_once(rt, sb.id, template, i))[:2],
                   "runc run": await runc_once(floor_dir / "runc", bundle, i)}  # fmt: skip
        if with_podman:
            results["podman"] = await podman_once(podman_dir, p_rootfs)
        for name, (start, stop) in results.items():
            times.setdefault(name, ([], []))[0].append(start)
            times[name][1].append(stop)
    await rt.remove_sandbox(sb.id)
    print(f"busybox container, {runs} runs each, interleaved (start = create+start until "
          f"running; stop = kill + delete)")
    for name, (starts, stops) in times.items():
        print(summary(name, starts, stops))
    ours, floor = times["dockyard"], times["runc run"]
    print(f"dockyard over runc at the median: start "
          f"{(statistics.median(ours[0]) - statistics.median(floor[0])) * 1000:+.1f} ms, stop "
          f"{(statistics.median(ours[1]) - statistics.median(floor[1])) * 1000:+.1f} ms")


def conmon_rss_kib(run_dir: Path) -> tuple[int, int, int]:
    """Return (count, RSS KiB, private RSS KiB) of live conmon processes of our run dir."""
    count = total = private = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(run_dir).encode() not in (proc / "cmdline").read_bytes():
                continue
            fields = dict(ln.split(":", 1) for ln in (proc / "status").read_text().splitlines())
        except OSError:
            continue
        if fields.get("Name", "").strip() != "conmon" or "VmRSS" not in fields:
            continue
        count += 1
        total += int(fields["VmRSS"].split()[0])
        private += int(fields["RssAnon"].split()[0])
    return count, total, private


async def bench_pods(rt: Runtime, image: ContainerConfig, pods: int) -> None:
    """Start `pods` sandboxes with a container each, concurrently; then remove them all."""
    limit = asyncio.Semaphore(16)

    async def one(i: int) -> str:
        async with limit:
            sb = await rt.create_sandbox(SandboxConfig(pod_uid=f"uid-{i}", name=f"pod-{i}"))
            cfg = ContainerConfig(name="c", lower_dirs=image.lower_dirs,
                                  image_config=image.image_config, command=SLEEP)  # fmt: skip
            cid = await rt.create_container(sb.id, cfg)
            await rt.start_container(cid)
            return sb.id

    took, ids = await timed(lambda: asyncio.gather(*(one(i) for i in range(pods))))
    running = [c for c in await rt.list_containers() if c.state == "running"]
    count, rss, private = conmon_rss_kib(rt.run_dir)
    print(f"{pods} pods with networking: all {len(running)} running after {took:.1f} s "
          f"({took / pods * 1000:.0f} ms per pod at concurrency 16)")
    print(f"conmon: {count} monitors, RSS {rss / 1024:.1f} MiB in all ({rss / max(1, count):.0f}"
          f" KiB each, shared library pages counted each time), private {private / 1024:.1f} MiB")

    async def remove(sid: str) -> None:
        async with limit:
            await rt.remove_sandbox(sid)

    took, _ = await timed(lambda: asyncio.gather(*(remove(s) for s in ids)))
    print(f"{pods} pods removed (stop, delete, CNI DEL, netns) in {took:.1f} s")


async def cleanup(base: Path) -> None:
    """Remove the floor's runc containers, podman's containers and both rootfs mounts."""
    runc_root = base / "floor" / "runc"
    if runc_root.exists():
        listed = subprocess.run(["runc", "--root", str(runc_root), "list", "-q"],
                                capture_output=True, text=True, check=False)  # fmt: skip
        for cid in listed.stdout.split():
            subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", cid],
                           check=False)  # fmt: skip
    if (base / "podman").exists():
        await run(*podman_argv(base / "podman"), "rm", "-a", "-f", "-t", "0")
    for d in (base / "floor", base / "podman"):
        if d.exists():
            remove_rootfs(d)


@contextlib.asynccontextmanager
async def busybox_runtime(base: Path) -> AsyncIterator[tuple[Runtime, ContainerConfig]]:
    """Yield a Runtime on a bridge of its own under base and a busybox container template;
    remove every container and sandbox it made and its network afterwards (bench_attach too)."""
    store = ImageStore(base / "images")
    image = bootstrap_busybox(store)
    template = ContainerConfig(name="t", lower_dirs=store.unpacked_layers(image),
                               image_config=image.config)  # fmt: skip
    rt = Runtime(run_dir=base / "run", data_dir=base / "data", bridge=f"dyb{secrets.token_hex(4)}",
                 pod_cidr=f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
    try:
        yield rt, template
    finally:
        for container in await rt.list_containers():
            await rt.stop_container(container.id, grace_seconds=0)
            await rt.remove_container(container.id)
        for sandbox in rt.list_sandboxes():
            await rt.remove_sandbox(sandbox.id)
        await rt.destroy_network()
        await rt.close()


async def main(args: argparse.Namespace) -> None:
    """Run the benchmarks in a temporary dir and clean everything up."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    try:
        async with busybox_runtime(base) as (rt, template):
            if args.runs > 0:
                await bench_start_stop(rt, template, base, args.runs,
                                       args.podman and shutil.which("podman") is not None)
            if args.pods > 0:
                await bench_pods(rt, template, args.pods)
    finally:
        await cleanup(base)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="start/stop runs per runtime")
    parser.add_argument("--pods", type=int, default=110, help="pods started at once (0: skip)")
    parser.add_argument("--no-podman", dest="podman", action="store_false")
    asyncio.run(main(parser.parse_args()))
