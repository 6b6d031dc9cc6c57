"""Pod volume sources, projected paths and downward API references: their validation.

The agent turns these into mounts on the host, so the rules that keep a path inside its
volume matter: item paths and subPaths are relative and never contain a ".." element;
hostPath types are the ones Kubernetes knows; downward API references name only the fields
Kubernetes exposes.

Invariants: validators never raise on malformed input; sources we do not inspect
(nfs, csi, ...) are accepted as they are, as long as a volume has exactly one source.
`object_items` is the one walk over a list of objects (volumes, mounts, ports, env, items)
that reports each non-object item; pod.py's validators use it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from dockyard.objects.quantity import QuantityError, parse_quantity
from dockyard.objects.validation import (
    FieldError,
    as_list,
    check,
    config_map_key,
    invalid,
    not_supported,
    required,
    type_invalid,
)

Obj = dict[str, Any]

HOST_PATH_TYPES = (
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
)
EMPTY_DIR_MEDIA = ("", "HugePages", "Memory")
ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
VOLUME_FIELD_PATHS = (
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
)
RESOURCE_FIELDS = (
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
)
_SUBSCRIPT_RE = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]\Z")
_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"


def relative_path(field: str, value: Any) -> list[FieldError]:
    """Check a path that must stay inside its volume: relative, without ".." elements."""
    if not isinstance(value, str):
        return [type_invalid(field, value, "must be a string")]
    errs: list[FieldError] = []
    if value.startswith("/"):
        errs.append(invalid(field, value, "must be a relative path"))
    if ".." in value.split("/"):
        errs.append(invalid(field, value, "must not contain '..'"))
    return errs


def object_items(items: list[Any], field: str, errs: list[FieldError]) -> Iterator[tuple[str, Obj]]:
    """Yield (field path, item) for each object of a list; record a type error for others."""
    for i, item in enumerate(items):
        if isinstance(item, dict):
            yield f"{field}[{i}]", item
        else:
            errs.append(type_invalid(f"{field}[{i}]", item, "must be an object"))


def validate_volume_source(volume: Obj, field: str) -> list[FieldError]:
    """Validate the one source of a volume (the caller checks there is exactly one)."""
    for key, rule in _SOURCES.items():
        source = volume.get(key)
        if source is not None:
            if not isinstance(source, dict):
                return [type_invalid(f"{field}.{key}", source, "must be an object")]
            return rule(source, f"{field}.{key}")
    return []


def _empty_dir(source: Obj, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    medium = source.get("medium", "")
    if medium not in EMPTY_DIR_MEDIA:
        errs.append(not_supported(f"{field}.medium", medium, EMPTY_DIR_MEDIA))
    limit = source.get("sizeLimit")
    if limit is not None:
        try:
            if parse_quantity(limit) < 0:
                errs.append(invalid(f"{field}.sizeLimit", limit, "must be greater than 0"))
        except QuantityError as exc:
            errs.append(invalid(f"{field}.sizeLimit", limit, str(exc)))
    return errs


def _host_path(source: Obj, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    path = source.get("path")
    if not path:
        errs.append(required(f"{field}.path"))
    elif not isinstance(path, str):
        errs.append(type_invalid(f"{field}.path", path, "must be a string"))
    elif ".." in path.split("/"):
        errs.append(invalid(f"{field}.path", path, "must not contain '..'"))
    kind = source.get("type", "")
    if kind not in HOST_PATH_TYPES:
        errs.append(not_supported(f"{field}.type", kind, HOST_PATH_TYPES))
    return errs


def _mode(field: str, value: Any) -> list[FieldError]:
    if value is None:
        return []
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o777:
        return [invalid(field, value, _MODE_MSG)]
    return []


def _key_items(source: Obj, field: str) -> list[FieldError]:
    errs = _mode(f"{field}.defaultMode", source.get("defaultMode"))
    items = as_list(source, "items", f"{field}.items", errs)
    for item_field, item in object_items(items, f"{field}.items", errs):
        key = item.get("key")
        if not key:
            errs.append(required(f"{item_field}.key"))
        else:
            errs += check(f"{item_field}.key", key, config_map_key)
        if not item.get("path"):
            errs.append(required(f"{item_field}.path"))
        else:
            errs += relative_path(f"{item_field}.path", item["path"])
        errs += _mode(f"{item_field}.mode", item.get("mode"))
    return errs


def _config_map(source: Obj, field: str) -> list[FieldError]:
    errs = [] if source.get("name") else [required(f"{field}.name")]
    return errs + _key_items(source, field)


def _secret(source: Obj, field: str) -> list[FieldError]:
    errs = [] if source.get("secretName") else [required(f"{field}.secretName")]
    return errs + _key_items(source, field)


def _claim(source: Obj, field: str) -> list[FieldError]:
    return [] if source.get("claimName") else [required(f"{field}.claimName")]


def _downward_api(source: Obj, field: str) -> list[FieldError]:
    errs = _mode(f"{field}.defaultMode", source.get("defaultMode"))
    items = as_list(source, "items", f"{field}.items", errs)
    for item_field, item in object_items(items, f"{field}.items", errs):
        if not item.get("path"):
            errs.append(required(f"{item_field}.path"))
        else:
            errs += relative_path(f"{item_field}.path", item["path"])
        errs += _mode(f"{item_field}.mode", item.get("mode"))
        errs += object_reference(item, item_field, VOLUME_FIELD_PATHS, volume=True)
    return errs


_PROJECTIONS = ("configMap", "downwardAPI", "secret", "serviceAccountToken", "clusterTrustBundle")


def _projected(source: Obj, field: str) -> list[FieldError]:
    errs = _mode(f"{field}.defaultMode", source.get("defaultMode"))
    for i, projection in enumerate(as_list(source, "sources", f"{field}.sources", errs)):
        item_field = f"{field}.sources[{i}]"
        kinds = [k for k in _PROJECTIONS if isinstance(projection, dict) and k in projection]
        if len(kinds) != 1:
            errs.append(invalid(item_field, projection, "must specify exactly 1 projection type"))
            continue
        inner = projection[kinds[0]]
        if not isinstance(inner, dict):
            errs.append(type_invalid(f"{item_field}.{kinds[0]}", inner, "must be an object"))
        elif kinds[0] in ("configMap", "secret"):
            errs += _named_items(inner, f"{item_field}.{kinds[0]}")
        elif kinds[0] == "downwardAPI":
            errs += _downward_api(inner, f"{item_field}.downwardAPI")
        elif kinds[0] == "serviceAccountToken" and inner.get("path"):
            errs += relative_path(f"{item_field}.serviceAccountToken.path", inner["path"])
    return errs


def _named_items(source: Obj, field: str) -> list[FieldError]:
    errs = [] if source.get("name") else [required(f"{field}.name")]
    return errs + _key_items(source, field)


_SOURCES = {
    "emptyDir": _empty_dir,
    "hostPath": _host_path,
    "configMap": _config_map,
    "secret": _secret,
    "persistentVolumeClaim": _claim,
    "downwardAPI": _downward_api,
    "projected": _projected,
}


def object_reference(
    item: Obj, field: str, paths: tuple[str, ...], *, volume: bool = False
) -> list[FieldError]:
    """Check a downward API item: exactly one of fieldRef and resourceFieldRef, supported."""
    field_ref, resource_ref = item.get("fieldRef"), item.get("resourceFieldRef")
    if (field_ref is None) == (resource_ref is None):
        return (
            [invalid(field, "", "must specify one of `fieldRef` or `resourceFieldRef`")]
            if volume
            else []
        )
    if isinstance(field_ref, dict):
        return field_path(f"{field}.fieldRef.fieldPath", field_ref.get("fieldPath"), paths)
    if isinstance(resource_ref, dict):
        errs = resource_field(f"{field}.resourceFieldRef.resource", resource_ref.get("resource"))
        if volume and not resource_ref.get("containerName"):
            errs.append(required(f"{field}.resourceFieldRef.containerName"))
        return errs
    return [type_invalid(field, item, "must be an object")]


def field_path(field: str, value: Any, paths: tuple[str, ...]) -> list[FieldError]:
    """Check a downward API fieldPath against the supported ones (labels['k'] included)."""
    if not value:
        return [required(field)]
    if isinstance(value, str) and value in paths:
        return []
    if isinstance(value, str) and _SUBSCRIPT_RE.match(value):
        return []
    return [not_supported(field, value, paths)]


def resource_field(field: str, value: Any) -> list[FieldError]:
    """Check a resourceFieldRef resource ("limits.cpu", "requests.memory", ...)."""
    if not value:
        return [required(field)]
    if value in RESOURCE_FIELDS or (
        isinstance(value, str) and value.startswith(("limits.hugepages-", "requests.hugepages-"))
    ):
        return []
    return [not_supported(field, value, RESOURCE_FIELDS)]


def key_reference(ref: Any, field: str) -> list[FieldError]:
    """Check a configMapKeyRef or secretKeyRef: name and a valid key."""
    if not isinstance(ref, dict):
        return [type_invalid(field, ref, "must be an object")]
    errs = [] if ref.get("name") else [required(f"{field}.name")]
    key = ref.get("key")
    if not key:
        errs.append(required(f"{field}.key"))
    else:
        errs += check(f"{field}.key", key, config_map_key)
    return errs
