"""Secret (v1): defaults (type Opaque, stringData folded into data) and validation.

Kubernetes treats stringData as write-only: it is merged into data (base64) and never stored;
``apply_defaults`` does that fold, so it must run before validation on every write.

Invariants: data values are valid base64; keys are valid config keys; the total size is at
most 1 MiB; type never changes; typed secrets carry their required keys; once
``immutable: true`` is set, data and the flag never change.
"""

from __future__ import annotations

import base64
from typing import Any

from dockyard.objects.configmap import decode_base64, validate_immutable
from dockyard.objects.meta import set_default
from dockyard.objects.validation import (
    FieldError,
    as_dict,
    check,
    config_map_key,
    immutable,
    invalid,
    required,
    too_long,
    type_invalid,
    validate_metadata,
    validate_metadata_update,
)

Obj = dict[str, Any]

MAX_SIZE = 1024 * 1024
_REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def apply_defaults(secret: Obj) -> None:
    """Default type to Opaque and fold stringData into data (base64), as Kubernetes does."""
    set_default(secret, "type", "Opaque")
    string_data = secret.get("stringData")
    if isinstance(string_data, dict) and all(isinstance(v, str) for v in string_data.values()):
        data = secret.get("data")
        if data is None:
            data = secret["data"] = {}
        if isinstance(data, dict):
            for key, value in string_data.items():
                data[key] = base64.b64encode(value.encode()).decode()
            del secret["stringData"]


def validate(secret: Obj) -> list[FieldError]:
    """Return every problem with a Secret."""
    errs = validate_metadata(secret, namespaced=True)
    data = as_dict(secret, "data", "data", errs)
    if "stringData" in secret:
        errs.append(type_invalid("stringData", secret["stringData"], "must map keys to strings"))
    size = 0
    for key, value in data.items():
        errs += check("data", key, config_map_key)
        decoded = decode_base64(value)
        if decoded is None:
            errs.append(invalid(f"data[{key}]", value, "must be base64 encoded"))
            continue
        size += len(decoded)
    if size > MAX_SIZE:
        errs.append(too_long("data", MAX_SIZE))
    kind = secret.get("type")
    if not isinstance(kind, str) or not kind:
        errs.append(required("type"))
    for key in _REQUIRED_KEYS.get(str(kind), ()):
        if key not in data:
            errs.append(required(f"data[{key}]"))
    if kind == "kubernetes.io/basic-auth" and not ({"username", "password"} & set(data)):
        errs.append(required("data[username]", "either username or password is required"))
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a Secret (type is immutable)."""
    errs = validate_metadata_update(new, old)
    errs += immutable("type", new.get("type"), old.get("type"))
    return errs + validate_immutable(new, old, ("data",))
