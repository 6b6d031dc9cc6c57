"""Field errors and the shared validation rules every kind uses (names, labels, metadata).

A ``FieldError`` names a field by its JSON path ("spec.containers[0].name"), carries the
Kubernetes cause reason ("FieldValueInvalid", ...) and a message phrased as Kubernetes phrases
it ("Invalid value: \"Foo_Bar\": a lowercase RFC 1123 subdomain must consist of ...").
``str(error)`` gives "field: message", the form kube-apiserver joins into a 422 Status message.

Invariants: validators never raise on malformed input (a string where a dict belongs is a
FieldValueTypeInvalid error, not a TypeError); they return every error found, in field order.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
DUPLICATE = "FieldValueDuplicate"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TYPE_INVALID = "FieldValueTypeInvalid"
NOT_FOUND = "FieldValueNotFound"


@dataclass(frozen=True)
class FieldError:
    """One invalid field: its path, Kubernetes' cause reason, and the message."""

    field: str
    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def to_cause(self) -> dict[str, str]:
        """Return the Status details cause Kubernetes sends for this error."""
        return {"reason": self.type, "message": self.message, "field": self.field}


def dict_of(value: Any) -> dict[str, Any]:
    """Return value when it is a dict, else {} (malformed shapes are reported elsewhere)."""
    return value if isinstance(value, dict) else {}


def list_of(value: Any) -> list[Any]:
    """Return value when it is a list, else [] (malformed shapes are reported elsewhere)."""
    return value if isinstance(value, list) else []


def hashable(value: Any) -> Any:
    """Return value if it can key a set, else its repr (so malformed values never raise)."""
    if isinstance(value, tuple):
        return tuple(hashable(v) for v in value)
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


def format_value(value: Any) -> str:
    """Format a bad value as Kubernetes' messages show it (strings quoted, numbers bare)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def required(field: str, detail: str = "") -> FieldError:
    """Build a FieldValueRequired error."""
    return FieldError(field, REQUIRED, "Required value" + (f": {detail}" if detail else ""))


def invalid(field: str, value: Any, detail: str) -> FieldError:
    """Build a FieldValueInvalid error for a value and the rule it breaks."""
    return FieldError(field, INVALID, f"Invalid value: {format_value(value)}: {detail}")


def duplicate(field: str, value: Any) -> FieldError:
    """Build a FieldValueDuplicate error."""
    return FieldError(field, DUPLICATE, f"Duplicate value: {format_value(value)}")


def not_supported(field: str, value: Any, supported: Iterable[str]) -> FieldError:
    """Build a FieldValueNotSupported error listing the supported values."""
    quoted = ", ".join(format_value(s) for s in supported)
    message = f"Unsupported value: {format_value(value)}: supported values: {quoted}"
    return FieldError(field, NOT_SUPPORTED, message)


def not_found(field: str, value: Any) -> FieldError:
    """Build a FieldValueNotFound error (a reference to something that does not exist)."""
    return FieldError(field, NOT_FOUND, f"Not found: {format_value(value)}")


def forbidden(field: str, detail: str) -> FieldError:
    """Build a FieldValueForbidden error."""
    return FieldError(field, FORBIDDEN, f"Forbidden: {detail}")


def too_long(field: str, limit: int, unit: str = "bytes") -> FieldError:
    """Build a FieldValueTooLong error."""
    return FieldError(field, TOO_LONG, f"Too long: may not be more than {limit} {unit}")


def type_invalid(field: str, value: Any, detail: str) -> FieldError:
    """Build a FieldValueTypeInvalid error (a value of the wrong JSON type)."""
    return FieldError(field, TYPE_INVALID, f"Invalid value: {format_value(value)}: {detail}")


def invalid_message(qualified_kind: str, name: str, errors: list[FieldError]) -> str:
    """Return the 422 Status message: 'Deployment.apps "web" is invalid: <errors>'."""
    joined = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    return f'{qualified_kind} "{name}" is invalid: {joined}'


# --- names -------------------------------------------------------------------------------

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + r"(\." + _LABEL_FMT + ")*"
_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(f"^{_LABEL_FMT}\\Z")
_SUBDOMAIN_RE = re.compile(f"^{_SUBDOMAIN_FMT}\\Z")
_DNS1035_RE = re.compile(f"^{_DNS1035_FMT}\\Z")
_QUALIFIED_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_RE = re.compile(f"^{_QUALIFIED_FMT}\\Z")
_LABEL_VALUE_FMT = f"({_QUALIFIED_FMT})?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}\\Z")
_ENV_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_NAME_RE = re.compile(f"^{_ENV_NAME_FMT}\\Z")
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY_FMT}\\Z")

_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    f"regex used for validation is '{_LABEL_FMT}')"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    f"regex used for validation is '{_SUBDOMAIN_FMT}')"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    f"'abc-123', regex used for validation is '{_DNS1035_FMT}')"
)


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_label(value: str) -> list[str]:
    """Return the problems that keep a value from being an RFC 1123 label (empty if none)."""
    errs = [_max_len(DNS1123_LABEL_MAX)] if len(value) > DNS1123_LABEL_MAX else []
    if not _LABEL_RE.match(value):
        errs.append(_LABEL_MSG)
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    """Return the problems that keep a value from being an RFC 1123 subdomain."""
    errs = [_max_len(DNS1123_SUBDOMAIN_MAX)] if len(value) > DNS1123_SUBDOMAIN_MAX else []
    if not _SUBDOMAIN_RE.match(value):
        errs.append(_SUBDOMAIN_MSG)
    return errs


def dns1035_label(value: str) -> list[str]:
    """Return the problems that keep a value from being an RFC 1035 label (service names)."""
    errs = [_max_len(DNS1123_LABEL_MAX)] if len(value) > DNS1123_LABEL_MAX else []
    if not _DNS1035_RE.match(value):
        errs.append(_DNS1035_MSG)
    return errs


def path_segment(value: str) -> list[str]:
    """Return why a name cannot be one segment of a URL path ("..", "a/b")."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def qualified_name(value: str) -> list[str]:
    """Return the problems that keep a value from being a label key ("example.com/name")."""
    prefix, slash, name = value.rpartition("/")
    errs: list[str] = []
    if slash:
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain(prefix))
        if value.count("/") > 1:
            return [
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                "'my.name',  or '123-abc', regex used for validation is "
                f"'{_QUALIFIED_FMT}') with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"
            ]
    if not name:
        return [*errs, "name part must be non-empty"]
    if len(name) > DNS1123_LABEL_MAX:
        errs.append("name part " + _max_len(DNS1123_LABEL_MAX))
    if not _QUALIFIED_RE.match(name):
        errs.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            f"'123-abc', regex used for validation is '{_QUALIFIED_FMT}')"
        )
    return errs


def label_value(value: str) -> list[str]:
    """Return the problems that keep a value from being a label value."""
    errs = [_max_len(DNS1123_LABEL_MAX)] if len(value) > DNS1123_LABEL_MAX else []
    if not _LABEL_VALUE_RE.match(value):
        errs.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
            f"or 'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE_FMT}')"
        )
    return errs


def env_var_name(value: str) -> list[str]:
    """Return the problems that keep a value from being an environment variable name."""
    if _ENV_NAME_RE.match(value):
        return []
    return [
        "a valid environment variable name must consist of alphabetic characters, digits, '_', "
        "'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  "
        f"or 'MyEnvName1', regex used for validation is '{_ENV_NAME_FMT}')"
    ]


def config_map_key(value: str) -> list[str]:
    """Return the problems that keep a value from being a ConfigMap or Secret data key."""
    errs = [_max_len(DNS1123_SUBDOMAIN_MAX)] if len(value) > DNS1123_SUBDOMAIN_MAX else []
    if not _CONFIG_KEY_RE.match(value):
        errs.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
            f"'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            f"'{_CONFIG_KEY_FMT}')"
        )
    if value in (".", ".."):
        errs.append(f"must not be '{value}'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


_PORT_NAME_RE = re.compile(r"^[-a-z0-9]+\Z")


def port_name(value: str) -> list[str]:
    """Return the problems that keep a value from being an IANA service (port) name."""
    errs = ["must be no more than 15 characters"] if len(value) > 15 else []
    if not _PORT_NAME_RE.match(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


PORT_RANGE = "must be between 1 and 65535, inclusive"


def port_number(field: str, value: Any, *, required_: bool = True) -> list[FieldError]:
    """Check that a value is a port number 1-65535 (absent is an error only if required)."""
    if value is None:
        return [required(field)] if required_ else []
    if not isinstance(value, int) or isinstance(value, bool):
        return [type_invalid(field, value, "must be an integer")]
    if value == 0 and not required_:
        return []
    return [] if 1 <= value <= 65535 else [invalid(field, value, PORT_RANGE)]


def int_or_port_name(field: str, value: Any) -> list[FieldError]:
    """Check a port given as a number (1-65535) or as a named port.

    As in Kubernetes, a string is always a name: "80" is refused (it has no letter), so
    consumers never meet a number spelled as a string.
    """
    if isinstance(value, str):
        return check(field, value, port_name)
    return port_number(field, value)


NameRule = Callable[[str], list[str]]


def check(field: str, value: Any, rule: NameRule) -> list[FieldError]:
    """Apply a name rule to a value and wrap each problem as a FieldValueInvalid error."""
    if not isinstance(value, str):
        return [type_invalid(field, value, "must be a string")]
    return [invalid(field, value, msg) for msg in _problems(rule, value)]


@functools.lru_cache(maxsize=16384)
def _problems(rule: NameRule, value: str) -> tuple[str, ...]:
    """Cache rule results: the same names, keys and label values recur in every object."""
    return tuple(rule(value))


def annotation_key(value: str) -> list[str]:
    """Return the problems with an annotation key (a qualified name, checked lowercased)."""
    return qualified_name(value.lower())


# --- typed access ------------------------------------------------------------------------


def as_dict(obj: dict[str, Any], key: str, field: str, errs: list[FieldError]) -> dict[str, Any]:
    """Return obj[key] when it is a dict (or absent → {}); otherwise record a type error."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        errs.append(type_invalid(field, value, "must be an object"))
        return {}
    return value


def as_list(obj: dict[str, Any], key: str, field: str, errs: list[FieldError]) -> list[Any]:
    """Return obj[key] when it is a list (or absent → []); otherwise record a type error."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        errs.append(type_invalid(field, value, "must be an array"))
        return []
    return value


def as_str_map(obj: dict[str, Any], key: str, field: str, errs: list[FieldError]) -> dict[str, str]:
    """Return obj[key] as a string-to-string map, recording a type error for non-strings."""
    result: dict[str, str] = {}
    for k, v in as_dict(obj, key, field, errs).items():
        if not isinstance(v, str):
            errs.append(type_invalid(f"{field}[{k}]", v, "must be a string"))
        else:
            result[k] = v
    return result


def non_negative(field: str, value: Any, errs: list[FieldError]) -> None:
    """Record an error unless value is absent or an integer >= 0."""
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        errs.append(type_invalid(field, value, "must be an integer"))
    elif value < 0:
        errs.append(invalid(field, value, "must be greater than or equal to 0"))


# --- metadata ----------------------------------------------------------------------------

TOTAL_ANNOTATION_SIZE = 256 * 1024


def validate_metadata(
    obj: dict[str, Any], *, namespaced: bool, name_rule: NameRule = dns1123_subdomain
) -> list[FieldError]:
    """Validate metadata: name or generateName, namespace, labels, annotations, owners."""
    errs: list[FieldError] = []
    meta = as_dict(obj, "metadata", "metadata", errs)
    name = meta.get("name") or ""
    generate = meta.get("generateName") or ""
    errs += _validate_names(name, generate, name_rule)
    errs += _validate_namespace(meta.get("namespace") or "", namespaced)
    errs += validate_labels(as_str_map(meta, "labels", "metadata.labels", errs), "metadata.labels")
    errs += _validate_annotations(as_str_map(meta, "annotations", "metadata.annotations", errs))
    errs += _validate_owner_references(as_list(meta, "ownerReferences", "metadata", errs))
    errs += _validate_finalizers(as_list(meta, "finalizers", "metadata.finalizers", errs))
    return errs


def _validate_names(name: Any, generate: Any, rule: NameRule) -> list[FieldError]:
    if not isinstance(name, str) or not isinstance(generate, str):
        return [type_invalid("metadata.name", name, "must be a string")]
    errs: list[FieldError] = []
    if generate:
        # A generateName prefix may end in "-": Kubernetes checks it as if that dash were a letter.
        masked = generate[:-1] + "a" if generate.endswith("-") else generate
        errs += [invalid("metadata.generateName", generate, m) for m in rule(masked)]
    if not name:
        if not generate:
            errs.append(required("metadata.name", "name or generateName is required"))
        return errs
    segment = path_segment(name)
    return errs + check("metadata.name", name, path_segment if segment else rule)


def _validate_namespace(namespace: Any, namespaced: bool) -> list[FieldError]:
    if not namespaced:
        if namespace:
            return [forbidden("metadata.namespace", "not allowed on this type")]
        return []
    if not namespace:
        return [required("metadata.namespace")]
    if not isinstance(namespace, str):
        return [type_invalid("metadata.namespace", namespace, "must be a string")]
    return check("metadata.namespace", namespace, dns1123_label)


def validate_labels(labels: dict[str, str], field: str) -> list[FieldError]:
    """Validate label keys (qualified names) and values."""
    errs: list[FieldError] = []
    for key, value in labels.items():
        errs += check(field, key, qualified_name)
        errs += check(field, value, label_value)
    return errs


def _validate_annotations(annotations: dict[str, str]) -> list[FieldError]:
    errs: list[FieldError] = []
    total = 0
    for key, value in annotations.items():
        errs += check("metadata.annotations", key, annotation_key)
        total += len(key.encode()) + len(value.encode())  # Kubernetes counts bytes
    if total > TOTAL_ANNOTATION_SIZE:
        errs.append(too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE))
    return errs


def _validate_owner_references(refs: list[Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    controllers = 0
    for i, ref in enumerate(refs):
        field = f"metadata.ownerReferences[{i}]"
        if not isinstance(ref, dict):
            errs.append(type_invalid(field, ref, "must be an object"))
            continue
        if not ref.get("apiVersion"):
            errs.append(invalid(f"{field}.apiVersion", "", "version must not be empty"))
        if not ref.get("kind"):
            errs.append(invalid(f"{field}.kind", "", "kind must not be empty"))
        if not ref.get("name"):
            errs.append(invalid(f"{field}.name", "", "name must not be empty"))
        if not ref.get("uid"):
            errs.append(invalid(f"{field}.uid", "", "uid must not be empty"))
        controllers += ref.get("controller") is True
    if controllers > 1:
        detail = "Only one reference can have Controller set to true"
        errs.append(invalid("metadata.ownerReferences", refs, detail))
    return errs


def _validate_finalizers(finalizers: list[Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, name in enumerate(finalizers):
        if not isinstance(name, str):
            errs.append(type_invalid(f"metadata.finalizers[{i}]", name, "must be a string"))
        else:
            errs += check(f"metadata.finalizers[{i}]", name, qualified_name)
    return errs


_IMMUTABLE_META = ("name", "namespace", "uid", "creationTimestamp")


def validate_metadata_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """Refuse changes to metadata.name, namespace, uid and creationTimestamp."""
    new_meta = dict_of(new.get("metadata"))
    old_meta = dict_of(old.get("metadata"))
    return [
        invalid(f"metadata.{key}", new_meta.get(key), "field is immutable")
        for key in _IMMUTABLE_META
        if old_meta.get(key) and new_meta.get(key) != old_meta.get(key)
    ]


def immutable(field: str, new: Any, old: Any) -> list[FieldError]:
    """Return a 'field is immutable' error when new differs from old."""
    return [] if new == old else [invalid(field, new, "field is immutable")]
