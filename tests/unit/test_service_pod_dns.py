"""Pods' resolv.conf settings per dnsPolicy (the kubelet's rules)."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.agent.worker import pod_dns

pytestmark = pytest.mark.unit


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}


def test_cluster_first_points_at_cluster_dns_with_search_domains() -> None:
    servers, searches, options = pod_dns(pod(), "10.88.0.1", "cluster.local")
    assert servers == ["10.88.0.1"]
    assert searches == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert options == ["ndots:5"]


def test_default_and_host_network_use_the_nodes_resolver() -> None:
    assert pod_dns(pod(dnsPolicy="Default"), "10.88.0.1", "cluster.local") == ([], [], [])
    assert pod_dns(pod(hostNetwork=True), "10.88.0.1", "cluster.local") == ([], [], [])
    with_host = pod_dns(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"),
                        "10.88.0.1", "cluster.local")
    assert with_host[0] == ["10.88.0.1"]


def test_dns_config_is_merged_and_none_policy_uses_it_alone() -> None:
    config = {"nameservers": ["1.2.3.4"], "searches": ["corp"],
              "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    merged = pod_dns(pod(dnsConfig=config), "10.88.0.1", "c.local")
    assert merged == (["10.88.0.1", "1.2.3.4"],
                      ["shop.svc.c.local", "svc.c.local", "c.local", "corp"], ["ndots:2", "edns0"])
    alone = pod_dns(pod(dnsPolicy="None", dnsConfig=config), "10.88.0.1", "c.local")
    assert alone == (["1.2.3.4"], ["corp"], ["ndots:2", "edns0"])


def test_no_cluster_dns_means_node_resolver() -> None:
    assert pod_dns(pod(), "", "cluster.local") == ([], [], [])
