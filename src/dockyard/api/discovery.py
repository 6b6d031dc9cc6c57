"""Discovery: which groups, versions and resources the server serves, in both of kubectl's forms.

Plain discovery (APIVersions, APIGroupList, APIResourceList) always; aggregated discovery
(APIGroupDiscoveryList) only in the exact version the Accept header asks for (v2 or v2beta1),
answered with exactly that media type, since kubectl 1.27–1.29 ask only for v2beta1 and fail
on v2. Subresources appear as "deployments/scale" with their own kind and verbs.
"""

from __future__ import annotations

from typing import Any

from dockyard.api import metrics_api
from dockyard.objects.resources import RESOURCES, ResourceInfo

SERVER_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-dockyard",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2026-11-26T00:00:00Z",
    "goVersion": "python3",
    "compiler": "cpython",
    "platform": "linux/amd64",
}
_ITEM_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
# (kind, group, version, verbs) of each subresource
_SUBRESOURCES: dict[str, tuple[str | None, str, str, list[str]]] = {
    "status": (None, "", "", ["get", "patch", "update"]),
    "scale": ("Scale", "autoscaling", "v1", ["get", "patch", "update"]),
    "binding": ("Binding", "", "v1", ["create"]),
    "eviction": ("Eviction", "policy", "v1", ["create"]),
    "log": ("Pod", "", "v1", ["get"]),
    "exec": ("PodExecOptions", "", "v1", ["create", "get"]),
    "attach": ("PodAttachOptions", "", "v1", ["create", "get"]),
    "portforward": ("PodPortForwardOptions", "", "v1", ["create", "get"]),
    "finalize": (None, "", "", ["update"]),
}


def group_versions() -> dict[str, list[str]]:
    """Return each served group with its versions ("" is the core group)."""
    groups: dict[str, list[str]] = {}
    for info in RESOURCES:
        versions = groups.setdefault(info.group, [])
        if info.version not in versions:
            versions.append(info.version)
    return groups


def served_subresources(info: ResourceInfo, available: set[str]) -> list[str]:
    """Return the subresources of a resource that this server can answer right now."""
    return [s for s in info.subresources if s in available]


def api_versions(host: str) -> dict[str, Any]:
    """Return the /api answer."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }


def api_group_list() -> dict[str, Any]:
    """Return the /apis answer."""
    groups = []
    for group, versions in group_versions().items():
        if not group:
            continue
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    groups.append(metrics_api.group_entry())
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group: str, version: str, available: set[str]) -> dict[str, Any] | None:
    """Return the /api/v1 or /apis/<g>/<v> answer, or None when not served."""
    if (group, version) == (metrics_api.GROUP, metrics_api.VERSION):
        return metrics_api.resource_list()
    infos = [r for r in RESOURCES if r.group == group and r.version == version]
    if not infos:
        return None
    resources: list[dict[str, Any]] = []
    for info in infos:
        resources.append(_resource_entry(info))
        for sub in served_subresources(info, available):
            kind, sub_group, sub_version, verbs = _SUBRESOURCES[sub]
            entry: dict[str, Any] = {
                "name": f"{info.plural}/{sub}", "singularName": "",
                "namespaced": info.namespaced, "kind": kind or info.kind, "verbs": verbs,
            }
            if kind and (sub_group, sub_version) != (info.group, info.version) and sub_version:
                entry["group"], entry["version"] = sub_group, sub_version
            resources.append(entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}


def _resource_entry(info: ResourceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": _ITEM_VERBS,
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    return entry


def aggregated(core: bool, media_version: str, available: set[str]) -> dict[str, Any]:
    """Return an APIGroupDiscoveryList for /api (core) or /apis, in v2 or v2beta1."""
    items = []
    for group, versions in group_versions().items():
        if (group == "") != core:
            continue
        items.append({
            "metadata": {"name": group},
            "versions": [
                {"version": v, "resources": _aggregated_resources(group, v, available),
                 "freshness": "Current"}
                for v in versions
            ],
        })
    if not core:
        items.append(metrics_api.aggregated_item())
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{media_version}",
        "metadata": {},
        "items": items,
    }


def _aggregated_resources(group: str, version: str, available: set[str]) -> list[dict[str, Any]]:
    out = []
    for info in RESOURCES:
        if (info.group, info.version) != (group, version):
            continue
        entry: dict[str, Any] = {
            "resource": info.plural,
            "responseKind": {"group": group, "version": version, "kind": info.kind},
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "singularResource": info.singular,
            "verbs": _ITEM_VERBS,
        }
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.categories:
            entry["categories"] = list(info.categories)
        subs = []
        for sub in served_subresources(info, available):
            kind, sub_group, sub_version, verbs = _SUBRESOURCES[sub]
            subs.append({
                "subresource": sub,
                "responseKind": {"group": sub_group if kind else group,
                                 "version": sub_version or version, "kind": kind or info.kind},
                "verbs": verbs,
            })
        if subs:
            entry["subresources"] = subs
        out.append(entry)
    return out


def aggregated_media_version(accept: str) -> str | None:
    """Return "v2" or "v2beta1" when the Accept header asks for aggregated discovery first."""
    for part in accept.split(","):
        part = part.strip()
        if "as=APIGroupDiscoveryList" in part:
            if "v=v2;" in part + ";" and "v=v2beta1" not in part:
                return "v2"
            if "v=v2beta1" in part:
                return "v2beta1"
        elif part.startswith("application/json"):
            return None
    return None


def openapi_index() -> dict[str, Any]:
    """Return /openapi/v3: one document per group version."""
    paths = {}
    for group, versions in group_versions().items():
        for version in versions:
            rel = f"api/{version}" if not group else f"apis/{group}/{version}"
            paths[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash=dockyard-1"}
    return {"paths": paths}


def openapi_document(group: str, version: str) -> dict[str, Any] | None:
    """Return the minimal OpenAPI v3 document kubectl's client-side apply needs.

    Per kind: a PATCH operation on the item path with x-kubernetes-group-version-kind and a
    fieldValidation parameter. No component schemas: a loose schema would make kubectl build
    strategic patches that replace whole lists.
    """
    if (group, version) == (metrics_api.GROUP, metrics_api.VERSION):
        return metrics_api.resource_list()
    infos = [r for r in RESOURCES if r.group == group and r.version == version]
    if not infos:
        return None
    prefix = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    paths: dict[str, Any] = {}
    for info in infos:
        scope = "/namespaces/{namespace}" if info.namespaced else ""
        gvk = {"group": group, "version": version, "kind": info.kind}
        operation = {
            "operationId": f"patch{info.kind}",
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
        }
        paths[f"{prefix}{scope}/{info.plural}/{{name}}"] = {"patch": operation}
    return {
        "openapi": "3.0.0",
        "info": {"title": "dockyard", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
    }


def openapi_v2_protobuf() -> bytes:
    """Return a minimal OpenAPI v2 document as the protobuf kubectl 1.27–1.31 fetch.

    kubectl reads /openapi/v2 (gnostic's openapi_v2.Document in protobuf) before a
    client-side or server-side apply and fails on a 404; with no definitions it falls back to
    its built-in types for strategic merge patches, which is what we want (see openapi_document).
    Fields: Document.swagger = 1, Document.info = 2 {title = 1, version = 2}.
    """
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    info = field(1, b"dockyard") + field(2, SERVER_VERSION["gitVersion"].encode())
    return field(1, b"2.0") + field(2, info)
