"""The resource registry: lookups by path and by kind, group versions, short names."""

from __future__ import annotations

import pytest

from dockyard.objects.resources import (
    RESOURCES,
    group_versions,
    lookup,
    lookup_kind,
    resolve,
    resources_in,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("group", "version", "plural", "kind", "api_version", "namespaced"),
    [
        ("", "v1", "pods", "Pod", "v1", True),
        ("", "v1", "nodes", "Node", "v1", False),
        ("", "v1", "namespaces", "Namespace", "v1", False),
        ("apps", "v1", "deployments", "Deployment", "apps/v1", True),
        ("coordination.k8s.io", "v1", "leases", "Lease", "coordination.k8s.io/v1", True),
        (
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            "autoscaling/v2",
            True,
        ),
        (
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            "PriorityClass",
            "scheduling.k8s.io/v1",
            False,
        ),
    ],
)
def test_lookup_by_path_and_kind_agree(
    group: str, version: str, plural: str, kind: str, api_version: str, namespaced: bool
) -> None:
    info = lookup(group, version, plural)
    assert info is not None
    assert (info.kind, info.api_version, info.namespaced) == (kind, api_version, namespaced)
    assert lookup_kind(api_version, kind) is info
    assert info.list_kind == kind + "List"


@pytest.mark.parametrize(
    ("group", "version", "plural"),
    [("", "v1", "pod"), ("apps", "v2", "deployments"), ("", "v1", "deployments")],
)
def test_unknown_paths_are_none(group: str, version: str, plural: str) -> None:
    assert lookup(group, version, plural) is None


def test_lookup_kind_needs_the_right_api_version() -> None:
    assert lookup_kind("v1", "Deployment") is None
    assert lookup_kind("apps/v1", "Pod") is None


def test_paths_and_kinds_are_unique() -> None:
    paths = [(r.group, r.version, r.plural) for r in RESOURCES]
    kinds = [(r.api_version, r.kind) for r in RESOURCES]
    # one resource served at two versions (autoscaling v1 and v2) shares its short names
    by_resource = {(r.group, r.plural): r.short_names for r in RESOURCES}
    short = [s for names in by_resource.values() for s in names]
    assert len(set(paths)) == len(paths)
    assert len(set(kinds)) == len(kinds)
    assert len(set(short)) == len(short)


def test_short_names_as_kubernetes() -> None:
    names = {r.plural: r.short_names for r in RESOURCES}
    assert names["pods"] == ("po",)
    assert names["deployments"] == ("deploy",)
    assert names["horizontalpodautoscalers"] == ("hpa",)
    assert names["priorityclasses"] == ("pc",)
    assert names["secrets"] == ()


def test_subresources_kubectl_needs() -> None:
    assert "scale" in (lookup("apps", "v1", "deployments") or RESOURCES[0]).subresources
    pods = lookup("", "v1", "pods")
    assert pods is not None
    assert {"status", "binding", "log", "exec", "eviction"} <= set(pods.subresources)


def test_group_versions_core_first_and_unique() -> None:
    gvs = group_versions()
    assert gvs[0] == ("", "v1")
    assert len(gvs) == len(set(gvs))
    assert ("apps", "v1") in gvs and ("autoscaling", "v2") in gvs
    assert {r.kind for r in resources_in("apps", "v1")} == {"Deployment", "ReplicaSet"}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("po", "Pod"),
        ("pod", "Pod"),
        ("pods", "Pod"),
        ("Pod", "Pod"),
        ("deploy", "Deployment"),
        ("deployments.apps", "Deployment"),
        ("hpa", "HorizontalPodAutoscaler"),
        ("horizontalpodautoscalers.autoscaling", "HorizontalPodAutoscaler"),
        ("ep", "Endpoints"),
        ("pc", "PriorityClass"),
        ("deployments.batch", None),
        ("widgets", None),
    ],
)
def test_resolve_kubectl_names(name: str, kind: str | None) -> None:
    found = resolve(name)
    assert (found.kind if found else None) == kind
