"""Reusable runtime fixtures: an isolated Runtime (own run/data dirs, bridge, pod CIDR) with
a busybox image, torn down with a check that nothing is left behind.

    from tests.integration import runtime_fixtures
    runtime = runtime_fixtures.runtime
    busybox = runtime_fixtures.busybox

`runtime` is a Runtime under tmp_path with a random bridge name and a random /24 pod CIDR;
at teardown every sandbox is removed, the network destroyed, and `leftovers()` must be empty
(mounts, runc containers, netns pins, bridge, iptables rules, cgroups).
"""

from __future__ import annotations

import random
import secrets
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import ImageStore
from dockyard.runtime import ContainerConfig, Runtime
from dockyard.runtime.cgroups import HIERARCHIES, controller_dir


@dataclass(frozen=True)
class BusyboxImage:
    """A busybox image's unpacked layers and config, ready for ContainerConfig."""

    layers: list[Path]
    config: dict[str, Any]

    def container(self, name: str, **kw: Any) -> ContainerConfig:
        """Return a ContainerConfig of this image."""
        return ContainerConfig(name=name, lower_dirs=self.layers, image_config=self.config,
                               image="busybox:latest", **kw)  # fmt: skip


@pytest.fixture
def busybox(tmp_path: Path) -> BusyboxImage:
    """Return busybox:latest from the image store, bootstrapped from busybox-static."""
    store = ImageStore(tmp_path / "images")
    image = bootstrap_busybox(store)
    return BusyboxImage(layers=store.unpacked_layers(image), config=image.config)


def make_runtime(base: Path, **kw: Any) -> Runtime:
    """Return a Runtime with its own dirs, bridge and pod CIDR under `base`."""
    bridge = kw.pop("bridge", f"dyt{secrets.token_hex(4)}")
    cidr = kw.pop("pod_cidr", f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
    return Runtime(run_dir=base / "run", data_dir=base / "data", bridge=bridge, pod_cidr=cidr,
                   **kw)  # fmt: skip


def leftovers(rt: Runtime) -> list[str]:
    """Return what of `rt` is still on the host (empty when fully cleaned up)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4]
            if mount_point.startswith((str(rt.run_dir), str(rt.data_dir))):
                found.append(f"mount {mount_point}")
    runc = subprocess.run(["runc", "--root", str(rt.run_dir / "runc"), "list", "-q"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    found += [f"runc container {c}" for c in runc.stdout.split()]
    if Path(f"/sys/class/net/{rt.network.bridge}").exists():
        found.append(f"bridge {rt.network.bridge}")
    save = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    found += [f"iptables {line}" for line in save.splitlines()
              if rt.network.name in line or rt.network.pod_cidr in line
              or rt.network.masq_chain in line]  # fmt: skip
    for controller in HIERARCHIES:
        if controller_dir(controller, rt.cgroup_root).exists():
            found.append(f"cgroup {controller}:{rt.cgroup_root}")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {n}" for n in netns.split() if rt.tag in n]
    return found


async def teardown(rt: Runtime) -> None:
    """Remove every sandbox and container of `rt` and its network; assert nothing is left."""
    for c in await rt.list_containers():
        await rt.remove_container(c.id)
    for s in rt.list_sandboxes():
        await rt.remove_sandbox(s.id)
    await rt.destroy_network()
    await rt.close()
    assert leftovers(rt) == []


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    """Yield an isolated Runtime; tear it down and check nothing is left."""
    rt = make_runtime(tmp_path)
    try:
        yield rt
    finally:
        await teardown(rt)
