"""ConfigMap (v1): validation of keys, size, and immutability.

Invariants: keys are valid config keys and unique across data and binaryData; binaryData
values are base64; the total size is at most 1 MiB; once ``immutable: true`` is set, data,
binaryData and the flag itself never change.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from dockyard.objects.validation import (
    FieldError,
    as_dict,
    check,
    config_map_key,
    forbidden,
    invalid,
    too_long,
    type_invalid,
    validate_metadata,
    validate_metadata_update,
)

Obj = dict[str, Any]

MAX_SIZE = 1024 * 1024


def apply_defaults(configmap: Obj) -> None:
    """Leave ConfigMaps as written (Kubernetes defaults nothing on them)."""


def validate(configmap: Obj) -> list[FieldError]:
    """Return every problem with a ConfigMap."""
    errs = validate_metadata(configmap, namespaced=True)
    data = as_dict(configmap, "data", "data", errs)
    binary = as_dict(configmap, "binaryData", "binaryData", errs)
    size = 0
    for key, value in data.items():
        errs += check("data", key, config_map_key)
        if not isinstance(value, str):
            errs.append(type_invalid(f"data[{key}]", value, "must be a string"))
            continue
        size += len(key) + len(value.encode())
        if key in binary:
            errs.append(invalid("data", key, "duplicate of key present in binaryData"))
    for key, value in binary.items():
        errs += check("binaryData", key, config_map_key)
        decoded = decode_base64(value)
        if decoded is None:
            errs.append(invalid(f"binaryData[{key}]", value, "must be base64 encoded"))
            continue
        size += len(key) + len(decoded)
    if size > MAX_SIZE:
        errs.append(too_long("", MAX_SIZE))
    immutable = configmap.get("immutable")
    if immutable is not None and not isinstance(immutable, bool):
        errs.append(type_invalid("immutable", immutable, "must be a boolean"))
    return errs


def decode_base64(value: Any) -> bytes | None:
    """Decode standard base64 strictly; return None if the value is not valid base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def validate_immutable(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[FieldError]:
    """Refuse changes to the given fields (and to the flag) once immutable is true."""
    if old.get("immutable") is not True:
        return []
    errs: list[FieldError] = []
    if new.get("immutable") is not True:
        errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    for name in fields:
        if (new.get(name) or {}) != (old.get(name) or {}):
            errs.append(forbidden(name, "field is immutable when `immutable` is set"))
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a ConfigMap (immutable ones keep their data)."""
    errs = validate_metadata_update(new, old)
    return errs + validate_immutable(new, old, ("data", "binaryData"))
