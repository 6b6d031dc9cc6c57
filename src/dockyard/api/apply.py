"""Server-side apply and field ownership (`metadata.managedFields`), as Kubernetes keeps them.

Every write records which manager set which fields. An entry of managedFields is
{manager, operation: "Apply"|"Update", apiVersion, time, fieldsType: "FieldsV1", fieldsV1},
and fieldsV1 is Kubernetes' FieldsV1 trie: `f:<name>` for a field, `k:{"name":"nginx"}` for
an item of a keyed list, `v:"x"` for an item of a set, and `.` for a list item that is
itself owned and also has owned children. A field set is handled here as a Python set of
paths; a path is a tuple of (prefix, text) steps such as (("f", "spec"), ("f", "replicas")).

server_side_apply() merges an applied configuration into the live object: maps merge field
by field, keyed lists (per dockyard.api.patch_schema's list keys) item by item, sets by
value, everything else is replaced. Fields the same manager applied before and no longer
applies are removed unless another manager also owns them. A field the applier sets to a
value different from what another manager owns is a conflict: PatchError 409 with one
Status cause per field, unless force is set, which takes the ownership over.

record_update() records a non-apply write (create, update, patch) as an "Update" entry that
takes the ownership of every field it changed, so later applies conflict properly.

Invariants: inputs are never mutated; identity and bookkeeping fields (apiVersion, kind,
metadata name/namespace/uid/resourceVersion/generation/creationTimestamp/managedFields...)
and status are never tracked, as Kubernetes resets status on the main resource;
an entry that owns nothing is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from dockyard.api.patch_schema import FieldSchema, PatchError, json_copy, schema_for

__all__ = ["BEFORE_FIRST_APPLY", "PatchError", "record_update", "server_side_apply"]

BEFORE_FIRST_APPLY = "before-first-apply"

Step = tuple[str, str]
Path = tuple[Step, ...]

_UNTRACKED_ROOT = frozenset({"apiVersion", "kind", "status"})
_UNTRACKED_META = frozenset({
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink",
})


@dataclass
class _Entry:
    """One managedFields entry with its field set decoded."""

    manager: str
    operation: str
    api_version: str
    time: str
    fields: set[Path]
    subresource: str = ""
    # The fieldsV1 as read, reused when the field set did not change (encoding is costly).
    read_fields: frozenset[Path] = frozenset()
    read_trie: dict[str, Any] | None = None

    @property
    def ident(self) -> tuple[str, str, str]:
        return self.manager, self.operation, self.subresource

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "manager": self.manager, "operation": self.operation,
            "apiVersion": self.api_version, "time": self.time,
            "fieldsType": "FieldsV1", "fieldsV1": self._trie(),
        }
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry

    def _trie(self) -> dict[str, Any]:
        if self.read_trie is not None and self.fields == self.read_fields:
            return json_copy(self.read_trie)
        return to_fields_v1(self.fields)


# --- server-side apply ---------------------------------------------------------------------


def server_side_apply(current: dict[str, Any] | None, applied: dict[str, Any], *, manager: str,
                      force: bool, kind: str, api_version: str, now: str) -> dict[str, Any]:
    """Return current with the applied configuration merged in and ownership recorded."""
    try:
        return _server_side_apply(current, applied, manager, force, kind, api_version, now)
    except RecursionError:
        raise PatchError(400, "BadRequest", "the applied configuration or the object is "
                                            "nested too deeply") from None


def _server_side_apply(current: dict[str, Any] | None, applied: dict[str, Any], manager: str,
                       force: bool, kind: str, api_version: str, now: str) -> dict[str, Any]:
    if not manager:
        raise PatchError(400, "BadRequest", "fieldManager is required for apply requests")
    schema = schema_for(kind)
    config = _configuration(current, applied)
    config_leaves = leaves(config, schema, strict=True)
    if current is None:
        result = json_copy(config)
        _write_managed(result, [_Entry(manager, "Apply", api_version, now, set(config_leaves))])
        return result
    entries = _read_managed(current, schema)
    _resolve_conflicts(entries, manager, config_leaves, leaves(current, schema), force)
    result = _merge(json_copy(current), config, schema)
    _record_apply(result, current, entries, set(config_leaves), schema,
                  _Entry(manager, "Apply", api_version, now, set()))
    return result


def _configuration(current: dict[str, Any] | None, applied: dict[str, Any]) -> dict[str, Any]:
    """Return the applied configuration without what apply ignores (nulls, status...)."""
    config: dict[str, Any] = _strip_nulls(json_copy(applied))
    _check_resource_version(current, config)
    config.pop("status", None)
    config.get("metadata", {}).pop("managedFields", None)
    return config


def _record_apply(result: dict[str, Any], current: dict[str, Any], entries: list[_Entry],
                  applied_set: set[Path], schema: FieldSchema, fresh: _Entry) -> None:
    """Drop the fields the manager no longer applies and write the new ownership."""
    previous = _find(entries, fresh.ident)
    others = set().union(*(e.fields for e in entries if e.ident != fresh.ident))
    stale = (previous.fields if previous else set()) - applied_set
    # A stale path stays when a path at or below it is still wanted, by anyone.
    _remove_paths(result, sorted(stale, key=len), others | applied_set, schema)
    if previous is None:
        fresh.fields = applied_set
        entries.append(fresh)
    else:
        if previous.fields != applied_set or result != current:
            previous.time = fresh.time
        previous.fields, previous.api_version = applied_set, fresh.api_version
    _write_managed(result, entries)


def _strip_nulls(value: Any) -> Any:
    """Drop null fields: in an applied configuration they say nothing."""
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _check_resource_version(current: dict[str, Any] | None, config: dict[str, Any]) -> None:
    """Honour a resourceVersion in the applied configuration as a precondition."""
    wanted = config.get("metadata", {}).pop("resourceVersion", None)
    if wanted is None:
        return
    have = (current or {}).get("metadata", {}).get("resourceVersion")
    if current is None or str(wanted) != str(have):
        raise PatchError(409, "Conflict",
                         f"the object has been modified (resourceVersion is {have}, the "
                         f"applied configuration names {wanted}); drop metadata.resourceVersion "
                         f"from the configuration or apply again on the latest version")


def _resolve_conflicts(entries: list[_Entry], manager: str, config: dict[Path, Any],
                       live: dict[Path, Any], force: bool) -> None:
    """Raise 409 for fields another manager owns with another value, or take them if forced."""
    conflicts: list[tuple[_Entry, Path]] = []
    for entry in entries:
        if entry.manager == manager:
            continue
        for path in sorted(entry.fields & config.keys()):
            if not _is_item(path) and path in live and live[path] != config[path]:
                conflicts.append((entry, path))
    if not conflicts:
        return
    if force:
        for entry, path in conflicts:
            entry.fields.discard(path)
        return
    raise _conflict_error(conflicts)


def _conflict_error(conflicts: list[tuple[_Entry, Path]]) -> PatchError:
    causes = [{"type": "FieldManagerConflict",
               "message": f"conflict with {_who(entry)}",
               "field": path_string(path)} for entry, path in conflicts]
    count = len(conflicts)
    noun = "conflict" if count == 1 else "conflicts"
    by_manager: dict[str, list[str]] = {}
    for entry, path in conflicts:
        by_manager.setdefault(_who(entry), []).append(path_string(path))
    parts = []
    for who, paths in by_manager.items():
        if len(paths) == 1:
            parts.append(f"conflict with {who}: {paths[0]}")
        else:
            parts.append(f"conflicts with {who}:\n" + "\n".join(f"- {p}" for p in paths))
    # Kubernetes' exact wording: kubectl appends its own advice (--force-conflicts).
    message = f"Apply failed with {count} {noun}: " + "\n".join(parts)
    return PatchError(409, "Conflict", message, causes)


def _who(entry: _Entry) -> str:
    text = f"{json.dumps(entry.manager)} using {entry.api_version}"
    return f"{text} with subresource {entry.subresource}" if entry.subresource else text


def _merge(live: Any, config: Any, schema: FieldSchema) -> Any:
    """Merge an applied value into a live value (which this call owns)."""
    if isinstance(live, dict) and isinstance(config, dict) and not schema.atomic:
        for key, value in config.items():
            child = schema.child(key)
            live[key] = _merge(live[key], value, child) if key in live else _copy(value)
        return live
    if isinstance(live, list) and isinstance(config, list):
        if schema.list_type == "map":
            item_schema = schema.item
            return _merge_list(live, config, lambda item: item_key(item, schema),
                               lambda old, new: _merge(old, new, item_schema))
        if schema.list_type == "set":
            return _merge_list(live, config, _json, lambda old, new: _copy(new))
    return _copy(config)


def _copy(value: Any) -> Any:
    """Copy a container (scalars are immutable and returned as they are)."""
    return json_copy(value) if isinstance(value, dict | list) else value


def _merge_list(live: list[Any], config: list[Any], key_of: Callable[[Any], str | None],
                merge_item: Callable[[Any, Any], Any]) -> list[Any]:
    """Merge two associative lists in the order structured-merge-diff gives them.

    Live items the configuration does not name stay where they are; shared items follow the
    configuration's order; new items come where the configuration puts them.
    """
    live_keys = [key_of(item) or f"#{i}" for i, item in enumerate(live)]
    config_keys = [key_of(item) or "" for item in config]
    live_items = dict(zip(reversed(live_keys), reversed(live), strict=True))
    in_config = set(config_keys)
    shared = [k for k in config_keys if k in live_items]
    next_shared = 0
    out: list[Any] = []
    done: set[str] = set()
    li = ci = 0
    while li < len(live) or ci < len(config):
        if li < len(live) and ci < len(config):
            key = live_keys[li]
            if key == config_keys[ci]:
                done.add(key)
                out.append(merge_item(live[li], config[ci]))
                li, ci, next_shared = li + 1, ci + 1, next_shared + 1
                continue
            if key in in_config and next_shared < len(shared) and shared[next_shared] != key:
                li += 1  # a shared item the configuration places later
                continue
        if li < len(live):
            key = live_keys[li]
            if key not in in_config:
                out.append(live[li])
                li += 1
                continue
            if key in done:
                li += 1
        if ci < len(config):
            key = config_keys[ci]
            done.add(key)
            old = live_items.get(key)
            out.append(merge_item(old, config[ci]) if old is not None
                       else _copy(config[ci]))
            ci += 1
            if next_shared < len(shared) and shared[next_shared] == key:
                next_shared += 1
    return out


def _remove_paths(obj: dict[str, Any], paths: Iterable[Path], kept: set[Path],
                  schema: FieldSchema) -> None:
    """Delete the given fields and items unless a kept path is at or below them."""
    for path in paths:
        if any(k[:len(path)] == path for k in kept):
            continue
        _delete(obj, path, schema)


def _delete(obj: Any, path: Path, schema: FieldSchema) -> None:
    parent_found, parent = lookup(obj, path[:-1], schema)
    if not parent_found:
        return
    for step in path[:-1]:
        schema = _descend(schema, step)
    prefix, text = path[-1]
    if prefix == "f" and isinstance(parent, dict):
        parent.pop(text, None)
    elif isinstance(parent, list):
        for i, item in enumerate(parent):
            if _step_matches(prefix, text, item, schema):
                del parent[i]
                return


# --- non-apply writes ----------------------------------------------------------------------


def record_update(before: dict[str, Any] | None, after: dict[str, Any], *, manager: str,
                  api_version: str, now: str) -> dict[str, Any]:
    """Return after with managedFields recording a non-apply write by manager."""
    try:
        return _record_update(before, after, manager, api_version, now)
    except RecursionError:
        raise PatchError(400, "BadRequest", "the object is nested too deeply") from None


def _record_update(before: dict[str, Any] | None, after: dict[str, Any], manager: str,
                   api_version: str, now: str) -> dict[str, Any]:
    result = json_copy(after)
    raw = _starting_managed_fields(before, after)
    if before is not None and _tracked_view(before) == _tracked_view(after):
        # Nothing tracked changed (a status write, say): keep the entries as they were.
        _write_raw_managed(result, raw)
        return result
    schema = schema_for(str(after.get("kind") or (before or {}).get("kind") or ""))
    changed, gone = _changes(before, after, schema)
    entries = _parse_managed(raw)
    ident = (manager or "unknown", "Update", "")
    for entry in entries:
        entry.fields -= gone
        if entry.ident != ident:
            entry.fields -= changed  # an update takes over the fields it changed
    if changed:
        mine = _find(entries, ident)
        if mine is None:
            entries.append(_Entry(ident[0], "Update", api_version, now, set(changed)))
        else:
            mine.fields |= changed
            mine.time, mine.api_version = now, api_version
    _write_managed(result, entries)
    return result


def _starting_managed_fields(before: dict[str, Any] | None,
                             after: dict[str, Any]) -> list[Any]:
    """Return the entries an update starts from: the client's when it sent new ones."""
    old = (before or {}).get("metadata", {}).get("managedFields")
    meta_after = after.get("metadata", {})
    if before is None or ("managedFields" in meta_after and meta_after["managedFields"] != old):
        # A client that sends managedFields explicitly replaces them, as in Kubernetes.
        old = meta_after.get("managedFields")
    return old if isinstance(old, list) else []


def _write_raw_managed(obj: dict[str, Any], raw: list[Any]) -> None:
    meta = obj.setdefault("metadata", {})
    if raw:
        meta["managedFields"] = json_copy(raw)
    else:
        meta.pop("managedFields", None)


def _changes(before: dict[str, Any] | None, after: dict[str, Any],
             schema: FieldSchema) -> tuple[set[Path], set[Path]]:
    """Return the tracked paths a write set or changed, and the ones it removed."""
    new = leaves(after, schema)
    if before is None:
        return set(new), set()
    old = leaves(before, schema)
    changed = {p for p, v in new.items() if p not in old or (not _is_item(p) and old[p] != v)}
    return changed, set(old.keys() - new.keys())


def _tracked_view(obj: dict[str, Any]) -> dict[str, Any]:
    """Return the tracked part of an object, shallowly (for a fast equality check)."""
    view = {k: v for k, v in obj.items() if k not in _UNTRACKED_ROOT and k != "metadata"}
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        view["metadata"] = {k: v for k, v in meta.items() if k not in _UNTRACKED_META}
    return view


# --- managedFields <-> entries -------------------------------------------------------------


def _read_managed(obj: dict[str, Any], schema: FieldSchema) -> list[_Entry]:
    """Read an object's entries; an untracked object is owned by "before-first-apply"."""
    raw = obj.get("metadata", {}).get("managedFields")
    if raw:
        return _parse_managed(raw)
    owned = fieldset(obj, schema)
    time = str(obj.get("metadata", {}).get("creationTimestamp") or "")
    api_version = str(obj.get("apiVersion", ""))
    return [_Entry(BEFORE_FIRST_APPLY, "Update", api_version, time, owned)] if owned else []


def _parse_managed(raw: list[Any]) -> list[_Entry]:
    entries: list[_Entry] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        fields_v1 = item.get("fieldsV1")
        trie = fields_v1 if isinstance(fields_v1, dict) else None
        fields = from_fields_v1(trie) if trie is not None else set()
        entries.append(_Entry(
            manager=str(item.get("manager", "")), operation=str(item.get("operation", "")),
            api_version=str(item.get("apiVersion", "")), time=str(item.get("time", "")),
            fields=fields, subresource=str(item.get("subresource", "")),
            read_fields=frozenset(fields), read_trie=trie,
        ))
    return entries


def _find(entries: list[_Entry], ident: tuple[str, str, str]) -> _Entry | None:
    return next((e for e in entries if e.ident == ident), None)


def _write_managed(obj: dict[str, Any], entries: list[_Entry]) -> None:
    kept = [e.to_json() for e in entries if e.fields]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """Encode a set of paths as a FieldsV1 trie (keys sorted, "." first, as Kubernetes)."""
    root: dict[str, Any] = {}
    members: list[dict[str, Any]] = []
    # Sorted paths insert keys in sorted order, a member before its children.
    for path in sorted(paths):
        node = root
        for prefix, text in path:
            key = f"{prefix}:{text}"
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            node = child
        members.append(node)
    for node in members:
        if node and "." not in node:
            children = list(node.items())
            node.clear()
            node["."] = {}
            node.update(children)
    return root


def from_fields_v1(trie: dict[str, Any]) -> set[Path]:
    """Decode a FieldsV1 trie into a set of paths."""
    paths: set[Path] = set()
    _walk_trie(trie, (), paths)
    return paths


def _walk_trie(node: dict[str, Any], path: Path, out: set[Path]) -> None:
    for key, child in node.items():
        if key == ".":
            out.add(path)
            continue
        prefix, sep, text = key.partition(":")
        if not sep or prefix not in ("f", "k", "v", "i"):
            continue  # not a FieldsV1 step: ignore rather than guess
        step = path + ((prefix, text),)
        if isinstance(child, dict) and child:
            _walk_trie(child, step, out)
        else:
            out.add(step)


# --- field sets and paths ------------------------------------------------------------------


def fieldset(obj: dict[str, Any], schema: FieldSchema, *, strict: bool = False) -> set[Path]:
    """Return the tracked paths an object sets (strict: refuse list items without keys)."""
    return set(leaves(obj, schema, strict=strict))


def leaves(obj: dict[str, Any], schema: FieldSchema, *,
           strict: bool = False) -> dict[Path, Any]:
    """Map each tracked path an object sets to its value, in one walk."""
    out: dict[Path, Any] = {}
    for key, value in obj.items():
        if key in _UNTRACKED_ROOT:
            continue
        if key == "metadata" and isinstance(value, dict):
            child = schema.child("metadata")
            for name, item in value.items():
                if name not in _UNTRACKED_META:
                    _walk(item, child.child(name), (("f", "metadata"), ("f", name)), strict, out)
            continue
        _walk(value, schema.child(key), (("f", key),), strict, out)
    return out


def _walk(value: Any, schema: FieldSchema, path: Path, strict: bool,
          out: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value and not schema.atomic:
        for key, child in value.items():
            _walk(child, schema.child(key), path + (("f", key),), strict, out)
    elif isinstance(value, list) and value and schema.list_type == "map":
        keys = [item_key(item, schema, strict=strict) for item in value]
        if not strict and (None in keys or len(set(keys)) != len(keys)):
            out[path] = value  # not a well-formed keyed list: own it whole
            return
        if len(set(keys)) != len(keys):
            raise PatchError(422, "Invalid", f"{path_string(path)}: duplicate entries for key "
                                             f"{list(schema.list_keys)}")
        item_schema = schema.item
        for key, item in zip(keys, value, strict=True):
            item_path = path + (("k", str(key)),)
            out[item_path] = item
            _walk(item, item_schema, item_path, strict, out)
    elif isinstance(value, list) and value and schema.list_type == "set":
        for item in value:
            out[path + (("v", _json(item)),)] = item
    else:
        out[path] = value


def item_key(item: Any, schema: FieldSchema, *, strict: bool = False) -> str | None:
    """Return the `k:` text of a keyed list item, or None when it lacks a key."""
    if not isinstance(item, dict):
        if strict:
            raise PatchError(422, "Invalid", f"expected a map in a list keyed by "
                                             f"{list(schema.list_keys)}, got {_json(item)}")
        return None
    key: dict[str, Any] = {}
    for name in schema.list_keys:
        if name in item:
            key[name] = item[name]
        elif name in schema.key_defaults:
            key[name] = schema.key_defaults[name]
        elif strict:
            raise PatchError(422, "Invalid", f"list item {_json(item)} lacks its key field "
                                             f"{name!r}")
        else:
            return None
    return _json(key)


def _json(value: Any) -> str:
    """Return compact JSON with sorted keys, the text FieldsV1 uses in `k:` and `v:` steps."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _is_item(path: Path) -> bool:
    return bool(path) and path[-1][0] in ("k", "v", "i")


def _step_matches(prefix: str, text: str, item: Any, schema: FieldSchema) -> bool:
    """Tell whether a list item is the one a `k:` or `v:` step names."""
    if prefix == "v":
        return _json(item) == text
    return prefix == "k" and item_key(item, schema) == text


def _descend(schema: FieldSchema, step: Step) -> FieldSchema:
    """Return the schema one step down: a field's, or a keyed list item's."""
    if step[0] == "f":
        return schema.child(step[1])
    return schema.item


def lookup(obj: Any, path: Path, schema: FieldSchema) -> tuple[bool, Any]:
    """Return (found, value) at a path."""
    node = obj
    for step in path:
        prefix, text = step
        if prefix == "f" and isinstance(node, dict) and text in node:
            node = node[text]
        elif prefix in ("k", "v") and isinstance(node, list):
            match = next((item for item in node if _step_matches(prefix, text, item, schema)),
                         _MISSING)
            if match is _MISSING:
                return False, None
            node = match
        else:
            return False, None
        schema = _descend(schema, step)
    return True, node


_MISSING = object()


def path_string(path: Path) -> str:
    """Format a path as Kubernetes prints it: .spec.containers[name="nginx"].image."""
    parts: list[str] = []
    for prefix, text in path:
        if prefix == "f":
            parts.append(f".{text}")
        elif prefix == "k":
            key = json.loads(text)
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]")
        else:
            parts.append(f"[={text}]")
    return "".join(parts)
