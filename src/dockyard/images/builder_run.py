"""Step rootfs and RUN: the image so far as overlayfs lower dirs, a fresh upper dir, runc.

A filesystem-changing step mounts the image's unpacked layers (bottom to top) plus, for RUN,
an init layer (empty /dev, /proc, /sys and /etc/resolv.conf, /etc/hosts, /etc/hostname
mount points, as Docker's init layer), with a fresh upper dir. Whatever the step writes
lands in the upper dir, which layerdiff.py turns into the step's layer.

RUN runs the command with `runc run` in the foreground: stdout and stderr (one pipe) stream
line by line to the caller. Network: "host" leaves the network namespace out of the spec
(the host's, so package managers reach their mirrors; the host's resolv.conf and hosts are
bind-mounted read-only), "none" gives a new, empty one.

Invariants: on every exit path (success, failure, cancellation) the runc container is
deleted, the overlay unmounted and the step dir removed; the init layer is never part of
the upper dir, so mount points never leak into layers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard.runtime.rootfs import mount_rootfs, remove_rootfs
from dockyard.runtime.runc import Runc
from dockyard.runtime.spec import (
    Mount,
    SandboxNamespaces,
    SpecRequest,
    build_spec,
    read_rootfs_file,
    resolve_user,
)

BUILD_HOSTNAME = "dockyard-build"
BUILD_PIDS_LIMIT = 4096
HOST_FILES = ("/etc/resolv.conf", "/etc/hosts")
OUTPUT_TAIL = 30


class RunStepError(RuntimeError):
    """A RUN step whose command failed; carries the exit code and the output's tail."""

    def __init__(self, message: str, exit_code: int, output: list[str]) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.output = output


@dataclass(frozen=True)
class StepRootfs:
    """A mounted step rootfs: the merged view and the upper dir that records changes."""

    rootfs: Path
    upper: Path
    step_dir: Path


@contextlib.asynccontextmanager
async def step_rootfs(
    work_dir: Path, layers: Sequence[Path], with_init: bool = False
) -> AsyncIterator[StepRootfs]:
    """Mount the layers with a fresh upper dir; unmount and remove everything on exit."""
    work_dir.mkdir(parents=True, exist_ok=True)
    step_dir = Path(tempfile.mkdtemp(dir=work_dir, prefix="step-"))
    try:
        lower = list(layers)
        if with_init:
            lower.append(_init_layer(step_dir / "init"))
        rootfs = await asyncio.to_thread(mount_rootfs, step_dir, lower)
        yield StepRootfs(rootfs, step_dir / "upper", step_dir)
    finally:
        await asyncio.to_thread(_remove_step, step_dir)


def _remove_step(step_dir: Path) -> None:
    remove_rootfs(step_dir)
    shutil.rmtree(step_dir, ignore_errors=True)


def _init_layer(path: Path) -> Path:
    for d in ("dev", "proc", "sys", "etc"):
        (path / d).mkdir(parents=True, mode=0o755, exist_ok=True)
    for f in ("etc/resolv.conf", "etc/hosts", "etc/hostname"):
        (path / f).touch(mode=0o644)
    return path


async def run_step(
    step: StepRootfs,
    runc: Runc,
    argv: Sequence[str],
    env: Mapping[str, str],
    user: str,
    workdir: str,
    network: str,
    on_output: Callable[[str], None],
) -> None:
    """Run `argv` in the step rootfs; raise RunStepError if it exits non-zero."""
    spec = _spec(step, argv, env, user, workdir, network)
    bundle = step.step_dir / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(spec))
    container_id = f"build-{uuid.uuid4().hex[:16]}"
    tail: list[str] = []
    try:
        proc = await asyncio.create_subprocess_exec(
            *runc.argv("run", "--bundle", str(bundle), container_id),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                tail = (tail + [line])[-OUTPUT_TAIL:]
                on_output(line)
            code = await proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
    finally:
        await runc.delete(container_id, force=True)
    if code != 0:
        raise RunStepError(
            f"the command {' '.join(argv)!r} returned a non-zero code: {code}", code, tail
        )


def _spec(
    step: StepRootfs, argv: Sequence[str], env: Mapping[str, str], user: str, workdir: str,
    network: str,
) -> dict[str, object]:  # fmt: skip
    passwd = read_rootfs_file(step.rootfs, "/etc/passwd")
    group = read_rootfs_file(step.rootfs, "/etc/group")
    resolved = resolve_user(user or "0", passwd, group)
    mounts: list[Mount] = []
    roots: list[Path] = []
    if network == "host":
        for host_file in HOST_FILES:
            real = Path(os.path.realpath(host_file))
            if real.is_file():
                mounts.append(Mount(real, host_file, read_only=True))
                roots.append(real)
    request = SpecRequest(
        command=list(argv), env=dict(env), working_dir=workdir or "/", mounts=mounts,
        hostname=BUILD_HOSTNAME,
    )  # fmt: skip
    spec = build_spec(
        image_config={"config": {}}, request=request, user=resolved, rootfs=step.rootfs,
        namespaces=SandboxNamespaces(), cgroups_path=f"/dockyard-build/{step.step_dir.name}",
        pids_limit=BUILD_PIDS_LIMIT, allowed_mount_roots=roots,
        nofile_limit=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    )  # fmt: skip
    if network == "host":
        linux = spec["linux"]
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    return spec
