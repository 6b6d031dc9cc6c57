"""Request bodies to objects: JSON, YAML, server-side apply's YAML, and Kubernetes protobuf.

decode_object() turns the body of a create, update or apply request into a JSON-compatible
dict, choosing the decoder from the Content-Type as the Kubernetes api server does (no
Content-Type means JSON, as the official Python client sometimes sends).

Invariants and safety rules:
- the result is a dict that json.dumps accepts: strings, ints (never turned into floats,
  except beyond 64 bits, as Kubernetes' JSON decoding does), finite floats, bools, None,
  lists, dicts with string keys;
- YAML is loaded with PyYAML's safe composer only, then converted by our own walk that
  refuses what JSON cannot say (`!!binary`, `!!set`, other tags, NaN/infinity, complex keys)
  and keeps timestamps as the strings written;
- YAML aliases are counted before anything is built (and expanded under a budget while
  building): a document whose aliases would add more than MAX_ALIAS_NODES nodes (a
  "billion laughs" bomb) or that refers to itself is refused, so decoding time and memory
  stay bounded by the body size;
- duplicate fields are kept last-wins, as Kubernetes does with fieldValidation=Ignore;
  strict=True (fieldValidation=Strict) makes them a DecodeError naming the field path, and
  find_duplicate_fields() lists them for fieldValidation=Warn;
- every failure is a DecodeError with the HTTP status to answer (400 malformed, 413 too
  large, 415 unknown media type) and a message naming the problem and where it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson
import yaml

from dockyard.api.protobuf import PROTOBUF_MAGIC, ProtobufError, decode_unknown

__all__ = [
    "APPLY_PATCH_YAML",
    "JSON",
    "MAX_ALIAS_NODES",
    "MAX_BODY_BYTES",
    "PROTOBUF",
    "YAML",
    "DecodeError",
    "decode_object",
    "find_duplicate_fields",
    "json_number",
]

MAX_BODY_BYTES = 3 * 1024 * 1024
# Nodes that aliases may add beyond the document's own nodes (the bound on alias expansion).
MAX_ALIAS_NODES = 100_000

JSON = "application/json"
YAML = "application/yaml"
APPLY_PATCH_YAML = "application/apply-patch+yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
_YAML_TYPES = (YAML, APPLY_PATCH_YAML, "application/x-yaml", "text/yaml")
SUPPORTED = (JSON, YAML, APPLY_PATCH_YAML, PROTOBUF)

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"


class DecodeError(Exception):
    """A request body that cannot be decoded, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def reason(self) -> str:
        """Return the Kubernetes Status reason for this error."""
        return {413: "RequestEntityTooLarge", 415: "UnsupportedMediaType"}.get(
            self.status, "BadRequest")


def decode_object(body: bytes, content_type: str | None, *,
                  strict: bool = False) -> dict[str, Any]:
    """Decode a request body into an object dict per its Content-Type."""
    obj, duplicates = _decode(body, content_type, find_duplicates=strict)
    if strict and duplicates:
        raise DecodeError(400, f"strict decoding error: duplicate field {duplicates[0]!r}")
    return obj


def find_duplicate_fields(body: bytes, content_type: str | None) -> list[str]:
    """List the paths of fields given more than once in a JSON or YAML body."""
    return _decode(body, content_type, find_duplicates=True)[1]


def media_type(content_type: str | None) -> str:
    """Return the bare, lower-case media type of a Content-Type header (JSON when absent)."""
    bare = (content_type or "").split(";", 1)[0].strip().lower()
    return bare or JSON


def _decode(body: bytes, content_type: str | None, *,
            find_duplicates: bool) -> tuple[dict[str, Any], list[str]]:
    kind = media_type(content_type)
    if len(body) > MAX_BODY_BYTES:
        raise DecodeError(413, f"the request body is {len(body)} bytes; the limit is "
                               f"{MAX_BODY_BYTES} bytes")
    if kind not in SUPPORTED and kind not in _YAML_TYPES:
        raise DecodeError(415, f"unsupported media type {kind!r}: send one of "
                               f"{', '.join(SUPPORTED)}")
    if kind == PROTOBUF:
        return _decode_protobuf(body), []
    text = _text(body)
    if not text.strip():
        raise DecodeError(400, "the request body is empty: send the object")
    try:
        if kind == JSON:
            obj, duplicates = _decode_json(text, find_duplicates)
        else:
            obj, duplicates = _decode_yaml_or_json(text, find_duplicates)
    except RecursionError:
        raise DecodeError(400, "the request body is nested too deeply") from None
    if not isinstance(obj, dict):
        raise DecodeError(400, f"the request body must be an object (a JSON/YAML mapping), "
                               f"got {_type_name(obj)}")
    try:
        orjson.dumps(obj)  # what the store cannot write back is refused now, not later
    except orjson.JSONEncodeError as exc:
        raise DecodeError(400, f"the request body holds a value JSON cannot carry: {exc} "
                               f"(strings must be valid Unicode)") from None
    return obj, duplicates


def _decode_protobuf(body: bytes) -> dict[str, Any]:
    if not body.startswith(PROTOBUF_MAGIC):
        raise DecodeError(400, "protobuf body does not start with the Kubernetes magic "
                               "bytes 'k8s\\x00'")
    try:
        return decode_unknown(body)
    except ProtobufError as exc:
        prefix = "malformed protobuf body: " if exc.status == 400 else ""
        raise DecodeError(exc.status, f"{prefix}{exc}") from None


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DecodeError(400, f"the request body is not UTF-8: {exc.reason} at byte "
                               f"{exc.start}") from None


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# --- JSON ----------------------------------------------------------------------------------


class _JsonObject(dict[str, Any]):
    """A decoded JSON object that remembers the keys it saw twice."""

    duplicates: list[str]


def _json_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def json_number(text: str) -> int | float:
    """Return an integer, as a float beyond 64 bits (what Kubernetes' JSON decoding does)."""
    value = int(text)
    return value if -(2**63) <= value < 2**63 else float(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _decode_json(text: str, find_duplicates: bool) -> tuple[Any, list[str]]:
    if not find_duplicates:
        try:
            # orjson is ~10x faster; it keeps the last of duplicate keys, as we do.
            return orjson.loads(text), []
        except orjson.JSONDecodeError:
            pass  # the standard library's parser below names the error and its position
    try:
        value = json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_refuse_constant,
                           parse_int=json_number)
    except json.JSONDecodeError as exc:
        raise DecodeError(400, f"the request body is not valid JSON: {exc.msg} at line "
                               f"{exc.lineno} column {exc.colno} (char {exc.pos})") from None
    except ValueError as exc:
        raise DecodeError(400, f"the request body is not valid JSON: {exc}") from None
    return value, list(_json_duplicates(value, ""))


def _json_duplicates(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, _JsonObject):
        for key in value.duplicates:
            yield f"{path}.{key}"
        for key, child in value.items():
            yield from _json_duplicates(child, f"{path}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _json_duplicates(child, f"{path}[{i}]")


# --- YAML ----------------------------------------------------------------------------------


def _decode_yaml_or_json(text: str, find_duplicates: bool) -> tuple[Any, list[str]]:
    """Decode YAML; a body that looks like JSON is tried as JSON first (YAML 1.1 differs)."""
    if text.lstrip().startswith("{"):
        try:
            return _decode_json(text, find_duplicates)
        except DecodeError as json_error:
            try:
                return _decode_yaml(text)
            except DecodeError:
                raise json_error from None
    return _decode_yaml(text)


def _decode_yaml(text: str) -> tuple[Any, list[str]]:
    root = _compose_single(text)
    if root is None or (isinstance(root, yaml.ScalarNode) and root.value == ""
                        and root.tag == _TAG + "null"):
        raise DecodeError(400, "the request body is an empty YAML document: send the object")
    if "*" in text:
        _check_aliases(root)  # a document without "*" has no alias to expand
    duplicates: list[str] = []
    # Every distinct node takes at least one character of text, so visits beyond
    # len(text) come from aliases.
    converter = _YamlConverter(duplicates, budget=len(text) + MAX_ALIAS_NODES)
    return converter.value(root, ""), duplicates


def _compose_single(text: str) -> yaml.Node | None:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.composer.ComposerError as exc:
        if "single document" in (exc.context or ""):
            raise DecodeError(400, f"the request body holds more than one YAML document{_at(exc)}; "
                                   f"send one object per request") from None
        raise DecodeError(400, f"the request body is not valid YAML{_at(exc)}: "
                               f"{exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        raise DecodeError(400, f"the request body is not valid YAML{_at(exc)}: "
                               f"{exc.problem}") from None
    except yaml.YAMLError as exc:
        raise DecodeError(400, f"the request body is not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return root


def _at(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    return f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""


def _mark(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1} column {node.start_mark.column + 1}"


def _check_aliases(root: yaml.Node) -> None:
    """Refuse documents whose aliases expand too far or refer to themselves."""
    sizes: dict[int, int] = {}
    distinct = 0
    # Iterative post-order walk: each distinct node is sized once, aliases reuse the size.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        ident = id(node)
        if done:
            on_path.discard(ident)
            sizes[ident] = 1 + sum(sizes[id(c)] for c in _children(node))
            distinct += 1
            if sizes[ident] - distinct > MAX_ALIAS_NODES:
                raise DecodeError(400, f"the YAML document's aliases expand to more than "
                                       f"{MAX_ALIAS_NODES} extra nodes (near {_mark(node)}); "
                                       f"refusing it")
            continue
        if ident in sizes:
            continue
        if ident in on_path:
            raise DecodeError(400, f"the YAML document refers to itself through an alias "
                                   f"at {_mark(node)}")
        on_path.add(ident)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise DecodeError(400, f"the YAML document refers to itself through an alias "
                                       f"at {_mark(child)}")
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


class _YamlConverter:
    """Build JSON-compatible values from composed YAML nodes."""

    def __init__(self, duplicates: list[str], budget: int) -> None:
        self.duplicates = duplicates
        self.budget = budget
        self.open: set[int] = set()  # the collections being built: an alias back is a cycle
        self.constructor = yaml.SafeLoader("")

    def value(self, node: yaml.Node, path: str) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise DecodeError(400, f"the YAML document's aliases expand to more than "
                                   f"{MAX_ALIAS_NODES} extra nodes (near {_mark(node)}); "
                                   f"refusing it")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.open:
            raise DecodeError(400, f"the YAML document refers to itself through an alias "
                                   f"at {_mark(node)}")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode) and node.tag == _TAG + "seq":
                return [self.value(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            raise self.unsupported(node, path)
        finally:
            self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: str) -> dict[str, Any]:
        if node.tag != _TAG + "map":
            raise self.unsupported(node, path)
        own_keys: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == _TAG + "merge":
                continue
            key = self.key(key_node, path)
            if key in own_keys:
                self.duplicates.append(f"{path}.{key} ({_mark(key_node)})")
            own_keys.add(key)
        # Resolve "<<" merge keys as YAML 1.1 (and go-yaml) do; later keys win.
        flat = yaml.MappingNode(node.tag, list(node.value), node.start_mark, node.end_mark)
        try:
            self.constructor.flatten_mapping(flat)
        except yaml.constructor.ConstructorError as exc:
            raise DecodeError(400, f"invalid YAML merge key{_at(exc)}: {exc.problem}") from None
        result: dict[str, Any] = {}
        for key_node, value_node in flat.value:
            key = self.key(key_node, path)
            result[key] = self.value(value_node, f"{path}.{key}")
        return result

    def key(self, node: yaml.Node, path: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise DecodeError(400, f"{path or '.'}: a mapping key must be a string, not a "
                                   f"{type(node).__name__} ({_mark(node)})")
        if node.tag in (_TAG + "binary", _TAG + "set") or not node.tag.startswith(_TAG):
            raise self.unsupported(node, path)
        # go-yaml's conversion to JSON also writes non-string keys (1, true) as text.
        return str(node.value)

    def scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        tag = node.tag
        if tag in (_TAG + "str", _TAG + "timestamp"):
            return node.value
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return self.constructor.construct_yaml_bool(node)
        if tag == _TAG + "int":
            return json_number(str(self.constructor.construct_yaml_int(node)))
        if tag == _TAG + "float":
            number = self.constructor.construct_yaml_float(node)
            if number != number or number in (float("inf"), float("-inf")):
                raise DecodeError(400, f"{path or '.'}: {node.value!r} is not a finite number "
                                       f"({_mark(node)})")
            return number
        raise self.unsupported(node, path)

    def unsupported(self, node: yaml.Node, path: str) -> DecodeError:
        return DecodeError(400, f"{path or '.'}: YAML tag {node.tag!r} has no JSON form "
                                f"({_mark(node)}); use plain strings, numbers, lists and maps")
