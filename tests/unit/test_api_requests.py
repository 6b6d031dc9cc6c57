"""Reading targets from paths, content negotiation and discovery's media-type rules."""

from __future__ import annotations

import pytest

from dockyard.api import discovery
from dockyard.api.requests import parse_target
from dockyard.api.status import StatusError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "plural", "namespace", "name", "sub"),
    [
        ("/api/v1/pods", "pods", None, None, None),
        ("/api/v1/namespaces/default/pods", "pods", "default", None, None),
        ("/api/v1/namespaces/default/pods/web-1", "pods", "default", "web-1", None),
        ("/api/v1/namespaces/default/pods/web-1/binding", "pods", "default", "web-1", "binding"),
        ("/api/v1/namespaces", "namespaces", None, None, None),
        ("/api/v1/namespaces/kube-system", "namespaces", None, "kube-system", None),
        ("/api/v1/namespaces/kube-system/status", "namespaces", None, "kube-system", "status"),
        ("/api/v1/nodes/n1/status", "nodes", None, "n1", "status"),
        ("/apis/apps/v1/namespaces/d/deployments/web/scale", "deployments", "d", "web", "scale"),
        ("/apis/apps/v1/deployments", "deployments", None, None, None),
    ],
)
def test_paths_resolve_to_targets(
    path: str, plural: str, namespace: str | None, name: str | None, sub: str | None
) -> None:
    target = parse_target(path)
    assert (target.info.plural, target.namespace, target.name, target.subresource) == (
        plural, namespace, name, sub)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v1/widgets", 404),
        ("/apis/apps/v2/deployments", 404),
        ("/api/v1/namespaces/default/nodes", 404),  # nodes are cluster-scoped
        ("/api/v1/namespaces/default/pods/x/nonsense", 404),
        ("/api/v1/namespaces/default/pods/..", 400),
        ("/api", 404),
    ],
)
def test_bad_paths_are_refused(path: str, code: int) -> None:
    with pytest.raises(StatusError) as raised:
        parse_target(path)
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        # kubectl 1.30+: v2 first, then v2beta1, then plain JSON
        ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
         "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
         "application/json", "v2"),
        # kubectl 1.27-1.29 ask only for v2beta1 and fail on v2
        ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
         "application/json", "v2beta1"),
        ("application/json, */*", None),
        ("", None),
    ],
)
def test_aggregated_discovery_only_in_the_version_asked(accept: str, wanted: str | None) -> None:
    assert discovery.aggregated_media_version(accept) == wanted


def test_resource_lists_name_subresources_with_their_kinds() -> None:
    listing = discovery.api_resource_list("apps", "v1", {"status", "scale"})
    assert listing is not None
    scale = next(r for r in listing["resources"] if r["name"] == "deployments/scale")
    assert (scale["kind"], scale["group"], scale["version"]) == ("Scale", "autoscaling", "v1")
    assert discovery.api_resource_list("apps", "v9", set()) is None


def test_openapi_document_has_a_patch_with_gvk_per_kind() -> None:
    document = discovery.openapi_document("apps", "v1")
    assert document is not None
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps", "version": "v1", "kind": "Deployment"}
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])
