"""The proxy's rendered iptables rules: balancing odds, readiness, affinity, policies, naming."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.proxy.rules import Chains, render, service_ports

pytestmark = pytest.mark.unit
CHAINS = Chains("T1")


def service(name: str = "web", **spec: Any) -> dict[str, Any]:
    body = {"clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "TCP"}], **spec}
    return {"metadata": {"name": name, "namespace": "default"}, "spec": body}


def endpoints(ready: list[tuple[str, str]], not_ready: list[str] = (),  # type: ignore[assignment]
              name: str = "web") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"}, "subsets": [{
        "addresses": [{"ip": ip, "nodeName": node} for ip, node in ready],
        "notReadyAddresses": [{"ip": ip} for ip in not_ready],
        "ports": [{"port": 8080, "protocol": "TCP"}]}]}


def rules(svc: dict[str, Any], eps: list[dict[str, Any]]) -> list[str]:
    ruleset = render(service_ports([svc], eps), CHAINS, "n1", "10.88.0.0/16")
    return ruleset.nat + ruleset.filter


def test_three_endpoints_get_a_third_each_and_not_ready_none() -> None:
    out = rules(service(), [endpoints([("10.88.0.2", "n1"), ("10.88.0.3", "n1"),
                                       ("10.88.0.4", "n2")], ["10.88.0.5"])])
    # First rule takes 1/3; of the remaining 2/3 the second takes 1/2 (=1/3); the last the rest.
    odds = [r for r in out if "statistic" in r]
    assert [r.split("--probability ")[1].split()[0] for r in odds] == [
        "0.3333333333", "0.5000000000"]
    dnats = [r.split("--to-destination ")[1] for r in out if "DNAT" in r]
    assert dnats == ["10.88.0.2:8080", "10.88.0.3:8080", "10.88.0.4:8080"]
    assert not any("10.88.0.5" in r for r in out)
    assert all(r.split()[1].startswith("DY-T1-") for r in out)


def test_no_ready_endpoint_rejects() -> None:
    out = rules(service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
                [endpoints([], ["10.88.0.5"])])
    rejects = [r for r in out if "REJECT" in r]
    assert len(rejects) == 2 and any("--dport 30080" in r for r in rejects)
    assert not any("DNAT" in r for r in out)


def test_session_affinity_uses_recent() -> None:
    out = rules(service(sessionAffinity="ClientIP"), [endpoints([("10.88.0.2", "n1")])])
    assert any("--rcheck --seconds 10800 --reap" in r for r in out)
    assert any("-m recent --name DY-T1-SEP-" in r and "--set" in r for r in out)


def test_traffic_policy_local_uses_this_nodes_endpoints() -> None:
    eps = [endpoints([("10.88.0.2", "n1"), ("10.88.0.3", "n2")])]
    internal = rules(service(internalTrafficPolicy="Local"), eps)
    assert [r for r in internal if "DNAT" in r] == [
        r for r in internal if "DNAT" in r and "10.88.0.2" in r]
    external = rules(service(type="NodePort", externalTrafficPolicy="Local",
                             ports=[{"port": 80, "nodePort": 30080}]), eps)
    svl = next(r.split("-j ")[1] for r in external if "-j DY-T1-SVL-" in r)
    assert len([r for r in external if r.startswith(f"-A {svl} -j DY-T1-SEP-")]) == 1


def test_restore_text_deletes_stale_chains() -> None:
    ruleset = render([], CHAINS, "n1", "10.88.0.0/16")
    text = ruleset.restore_text(None, {"nat": {"DY-T1-SVC-OLD"}, "filter": set()})
    assert ":DY-T1-SVC-OLD - [0:0]" in text and "-X DY-T1-SVC-OLD" in text
    assert text.index("*filter") < text.index("*nat") and text.count("COMMIT") == 2


def test_partial_sync_rewrites_only_changed_chains() -> None:
    three = [endpoints([("10.88.0.2", "n1"), ("10.88.0.3", "n1"), ("10.88.0.4", "n1")])]
    other = service("db", clusterIP="10.96.0.20")
    before = render(service_ports([service(), other], three), CHAINS, "n1", "10.88.0.0/16")
    two = [endpoints([("10.88.0.2", "n1"), ("10.88.0.3", "n1")])]
    after = render(service_ports([service(), other], two), CHAINS, "n1", "10.88.0.0/16")
    text = after.restore_text(before)
    declared = [line for line in text.splitlines() if line.startswith(":")]
    # Only web's SVC chain changes (2 endpoints now) and the gone endpoint's SEP chain is
    # deleted; db (no endpoints) and the top-level chains are left alone.
    assert len(declared) == 2 and "-X DY-T1-SEP-" in text
    assert "10.88.0.4" not in text and "--probability 0.5000000000" in text
    assert after.restore_text(after).count(":") == 0
