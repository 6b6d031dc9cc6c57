"""The proxy's iptables plumbing against the real kernel: own chains only, side by side, gone
after removal; route_localnet set on one interface and restored."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockyard.proxy import iptables
from dockyard.proxy.rules import Chains, render, service_ports

pytestmark = pytest.mark.integration


def save() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


def lines_of(tag: str) -> list[str]:
    return [line for line in save().splitlines() if f"DY-{tag}-" in line or f"proxy {tag}" in line]


def objects(ip: str) -> tuple[list[dict], list[dict]]:  # type: ignore[type-arg]
    svc = {"metadata": {"name": "web", "namespace": "t"}, "spec": {
        "clusterIP": ip, "type": "NodePort",
        "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31999}]}}
    eps = {"metadata": {"name": "web", "namespace": "t"}, "subsets": [{
        "addresses": [{"ip": "10.254.9.2"}, {"ip": "10.254.9.3"}],
        "ports": [{"port": 8080, "protocol": "TCP"}]}]}
    return [svc], [eps]


@pytest.fixture
async def tags() -> AsyncIterator[list[str]]:
    made = [secrets.token_hex(3).upper(), secrets.token_hex(3).upper()]
    yield made
    for tag in made:
        await iptables.remove_all(f"DY-{tag}-", tag)
        assert lines_of(tag) == []


async def test_two_proxies_side_by_side_then_nothing_left(tags: list[str]) -> None:
    for i, tag in enumerate(tags):
        chains = Chains(tag)
        services, endpoints = objects(f"10.253.0.{10 + i}")
        ruleset = render(service_ports(services, endpoints), chains, "n", "10.254.9.0/24")
        await iptables.restore(ruleset.restore_text())
        await iptables.ensure_jumps(chains.prefix, tag)
        await iptables.ensure_jumps(chains.prefix, tag)  # idempotent
    for tag in tags:
        mine = lines_of(tag)
        assert any("--to-destination 10.254.9.2:8080" in line for line in mine)
        jumps = [line for line in mine if f"dockyard proxy {tag}" in line]
        assert len(jumps) == len(iptables.JUMPS)
    await iptables.remove_all(f"DY-{tags[0]}-", tags[0])
    assert lines_of(tags[0]) == []
    assert any("--to-destination" in line for line in lines_of(tags[1]))


@pytest.fixture
def bridge() -> Iterator[str]:
    name = f"dyt{secrets.token_hex(4)}"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=True)


def test_route_localnet_only_on_the_bridge_and_restored(bridge: str) -> None:
    everywhere = Path("/proc/sys/net/ipv4/conf/all/route_localnet").read_text()
    knob = iptables.RouteLocalnet(bridge)
    assert knob.path.read_text().strip() == "0"
    knob.ensure()
    assert knob.path.read_text().strip() == "1"
    assert Path("/proc/sys/net/ipv4/conf/all/route_localnet").read_text() == everywhere
    knob.restore()
    assert knob.path.read_text().strip() == "0"
    iptables.RouteLocalnet("dy-no-such-if").ensure()  # no bridge yet: nothing to do
