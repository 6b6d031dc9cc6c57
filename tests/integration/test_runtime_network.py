"""Pod networking: the pod IP and a host port (127.0.0.1) reach a container; teardown is
complete (no netns pins, bridge, iptables rules, addresses)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime import NetworkError, PortMapping, RequestError, Runtime, SandboxConfig
from tests.integration import runtime_fixtures
from tests.integration.runtime_fixtures import BusyboxImage, leftovers, make_runtime, teardown

pytestmark = pytest.mark.integration

runtime = runtime_fixtures.runtime
busybox = runtime_fixtures.busybox

HTTPD = "mkdir -p /www && echo from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fetch(url: str, attempts: int = 50) -> str:
    for _ in range(attempts):
        try:
            return await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=2).read().decode()
            )
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered")


async def test_pod_ip_and_host_port_on_loopback(runtime: Runtime, busybox: BusyboxImage) -> None:
    port = free_port()
    sb = await runtime.create_sandbox(
        SandboxConfig(pod_uid="u1", name="web", port_mappings=[PortMapping(port, 80)])
    )
    assert sb.ip.startswith(runtime.network.pod_cidr.rsplit(".", 2)[0])
    cid = await runtime.create_container(
        sb.id, busybox.container("httpd", command=["sh", "-c", HTTPD])
    )
    await runtime.start_container(cid)
    assert await fetch(f"http://{sb.ip}:80/") == "from-web\n"
    assert await fetch(f"http://127.0.0.1:{port}/") == "from-web\n"
    route_localnet = Path(f"/proc/sys/net/ipv4/conf/{runtime.network.bridge}/route_localnet")
    assert route_localnet.read_text().strip() == "1"
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    assert f"-A POSTROUTING -s {runtime.network.pod_cidr}" in nat  # outbound masquerade
    assert f"-A {runtime.network.masq_chain} ! -d 224.0.0.0/4 -j MASQUERADE" in nat


async def test_pods_reach_each_other_and_addresses_are_released(
    runtime: Runtime, busybox: BusyboxImage
) -> None:
    a = await runtime.create_sandbox(SandboxConfig(pod_uid="ua", name="a"))
    b = await runtime.create_sandbox(SandboxConfig(pod_uid="ub", name="b"))
    assert a.ip != b.ip
    srv = await runtime.create_container(
        a.id, busybox.container("httpd", command=["sh", "-c", HTTPD])
    )
    cli = await runtime.create_container(b.id, busybox.container("cli", command=["sleep", "300"]))
    await runtime.start_container(srv)
    await runtime.start_container(cli)
    for _ in range(50):
        result = await runtime.exec_sync(cli, ["wget", "-qO-", f"http://{a.ip}/"], 5)
        if result.exit_code == 0:
            break
        await asyncio.sleep(0.1)
    assert result.stdout == b"from-a\n"
    ipam = runtime.network.ipam_dir / runtime.network.name
    assert (ipam / a.ip).exists()
    await runtime.remove_sandbox(a.id)
    assert not (ipam / a.ip).exists()
    assert not a.netns_path.exists()
    assert [s.id for s in runtime.list_sandboxes()] == [b.id]


async def test_bad_port_mappings_refused(runtime: Runtime) -> None:
    for ports in ([PortMapping(0, 80)], [PortMapping(8080, 80, "icmp")],
                  [PortMapping(8080, 80), PortMapping(8080, 81)]):  # fmt: skip
        with pytest.raises(RequestError, match="port mapping"):
            await runtime.create_sandbox(SandboxConfig(pod_uid="u", name="p", port_mappings=ports))
    assert runtime.list_sandboxes() == []


async def test_failed_cni_leaves_nothing(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, cni_bin_dir=tmp_path / "no-plugins")
    with pytest.raises(NetworkError, match="not found"):
        await rt.create_sandbox(SandboxConfig(pod_uid="u", name="p"))
    assert rt.list_sandboxes() == []
    assert list((rt.run_dir / "sandboxes").iterdir()) == []
    await teardown(rt)


async def test_teardown_leaves_nothing_on_the_host(tmp_path: Path, busybox: BusyboxImage) -> None:
    rt = make_runtime(tmp_path)
    before = set(
        subprocess.run(["iptables-save"], capture_output=True, text=True).stdout.split("\n")
    )
    sb = await rt.create_sandbox(
        SandboxConfig(pod_uid="u", name="p", port_mappings=[PortMapping(free_port(), 80)])
    )
    cid = await rt.create_container(sb.id, busybox.container("c", command=["sleep", "300"]))
    await rt.start_container(cid)
    assert leftovers(rt)  # the checker sees a live pod's pieces
    await rt.remove_sandbox(sb.id)
    await rt.destroy_network()
    assert leftovers(rt) == []
    after = set(
        subprocess.run(["iptables-save"], capture_output=True, text=True).stdout.split("\n")
    )
    added = {line for line in after - before if line and not line.startswith("#")}
    assert not {line for line in added if not line.startswith(":")}, added


async def test_port_forward_reaches_the_pods_loopback(
    runtime: Runtime, busybox: BusyboxImage
) -> None:
    sb = await runtime.create_sandbox(SandboxConfig(pod_uid="u", name="fwd"))
    cmd = "mkdir -p /www && echo forwarded > /www/index.html && httpd -f -p 127.0.0.1:9090 -h /www"
    # httpd listens on the pod's loopback only: nothing but port-forward reaches it
    cid = await runtime.create_container(sb.id, busybox.container("web", command=["sh", "-c", cmd]))
    await runtime.start_container(cid)
    for _ in range(50):
        try:
            reader, writer = await runtime.port_forward(sb.id, 9090)
            break
        except NetworkError:
            await asyncio.sleep(0.1)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert response.endswith(b"forwarded\n")
    with pytest.raises(NetworkError, match="port 9091"):
        await runtime.port_forward(sb.id, 9091)  # nothing listens there


async def test_concurrent_sandboxes_on_a_fresh_network(runtime: Runtime) -> None:
    # The first ADDs race to make the bridge and the masquerade chain.
    made = await asyncio.gather(
        *(runtime.create_sandbox(SandboxConfig(pod_uid=f"u{i}", name=f"p{i}")) for i in range(8))
    )
    assert len({s.ip for s in made}) == 8
    await asyncio.gather(*(runtime.remove_sandbox(s.id) for s in made))
    assert runtime.list_sandboxes() == []


async def test_sandbox_of_an_older_runtime_with_pod_masquerade_is_torn_down(
    runtime: Runtime,
) -> None:
    import dataclasses

    network = runtime.network
    modern = network.conflist

    def legacy() -> dict[str, Any]:
        conf = modern()
        conf["plugins"][0]["ipMasq"] = True  # how dockyard attached pods before
        return conf

    network.conflist = legacy  # type: ignore[method-assign]
    sb = await runtime.create_sandbox(SandboxConfig(pod_uid="u", name="old"))
    network.conflist = modern  # type: ignore[method-assign]
    rec = runtime._sandbox_record(sb.id)
    runtime._save_sandbox(dataclasses.replace(rec, network_version=1))
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    assert f'id: \\"{sb.id}\\"' in nat  # the bridge plugin's per-pod chain
    await runtime.remove_sandbox(sb.id)
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    assert sb.id not in nat
