"""Strategic merge patch, as the Kubernetes api server applies it.

A strategic merge patch is a JSON merge patch that knows the schema: lists of maps with a
patch merge key (containers by name, ports by containerPort...) are merged item by item
instead of replaced, primitive lists with patch strategy "merge" (finalizers) are merged as
sets, and the patch may carry directives:

- `null` deletes a key;
- `$patch: replace` (in a map: use this map as is; as a list item: replace the whole list),
  `$patch: delete` (in a map: clear it; as a list item: delete the item with that key),
  `$patch: merge` (the default);
- `$retainKeys: [..]` keeps only the named keys of the original map (unions such as
  a volume source or a deployment strategy);
- `$deleteFromPrimitiveList/<field>: [..]` removes values from a primitive list;
- `$setElementOrder/<field>: [..]` gives the order of the merged list; items the patch does
  not name keep their place relative to the others.

Invariants: the original is never mutated (the caller passes a copy or gets a new dict);
directives never leak into the result; a structurally bad patch raises PatchError 400 and a
patch whose content contradicts its own `$retainKeys` raises PatchError 422, as in
Kubernetes. The code follows the semantics of k8s.io/apimachinery's strategicpatch package
(no Python library implements them).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from dockyard.api.patch_schema import FieldSchema, PatchError

PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_FROM = "$deleteFromPrimitiveList/"
_DIRECTIVES = ("replace", "delete", "merge")


def strategic_merge(original: dict[str, Any], patch: dict[str, Any], schema: FieldSchema) -> dict:
    """Return original with a strategic merge patch applied under the given schema."""
    return _merge_map(copy.deepcopy(original), patch, schema, "")


def _bad(message: str) -> PatchError:
    return PatchError(400, "BadRequest", message)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: FieldSchema,
               path: str) -> dict[str, Any]:
    """Merge patch into original (which this call owns and may change)."""
    directive = patch.get(PATCH)
    if directive is not None:
        if directive not in _DIRECTIVES:
            raise _bad(f"{path or '.'}: unknown $patch directive {directive!r}; "
                       f"use one of replace, delete, merge")
        if directive == "delete":
            return {}
        if directive == "replace":
            body = {k: v for k, v in patch.items() if k != PATCH}
            return _merge_map({}, body, schema, path)
    if RETAIN_KEYS in patch:
        original = _retain_keys(original, patch, path)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith(SET_ORDER):
            orders[key[len(SET_ORDER):]] = _directive_list(key, value, path)
        elif key.startswith(DELETE_FROM):
            _delete_from_primitive_list(original, key[len(DELETE_FROM):], value, path)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        _merge_field(original, key, value, schema.child(key), orders.get(key), f"{path}.{key}")
    for key, order in orders.items():
        if key not in patch and isinstance(original.get(key), list):
            original[key] = _apply_order(original[key], original[key], order, schema.child(key))
    return original


def _merge_field(original: dict[str, Any], key: str, value: Any, schema: FieldSchema,
                 order: list[Any] | None, path: str) -> None:
    """Merge one patch field into original[key]."""
    if value is None:
        original.pop(key, None)
        return
    current = original.get(key)
    if isinstance(value, dict):
        base = current if isinstance(current, dict) else {}
        original[key] = _merge_map(base, value, schema, path)
    elif isinstance(value, list):
        base_list = current if isinstance(current, list) else []
        original[key] = _merge_list(base_list, value, schema, order, path)
    else:
        original[key] = value


def _directive_list(key: str, value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(f"{path or '.'}: {key} must be a list, got {type(value).__name__}")
    return value


def _retain_keys(original: dict[str, Any], patch: dict[str, Any], path: str) -> dict[str, Any]:
    """Drop the original keys that $retainKeys does not name."""
    retain = _directive_list(RETAIN_KEYS, patch[RETAIN_KEYS], path)
    if not all(isinstance(k, str) for k in retain):
        raise _bad(f"{path or '.'}: $retainKeys must be a list of strings")
    for key, value in patch.items():
        if not key.startswith("$") and value is not None and key not in retain:
            raise PatchError(
                422, "Invalid",
                f"{path or '.'}: the patch sets {key!r}, which is not in $retainKeys {retain}",
            )
    return {k: v for k, v in original.items() if k in retain}


def _delete_from_primitive_list(original: dict[str, Any], key: str, value: Any,
                                path: str) -> None:
    """Remove the given values from the primitive list original[key]."""
    doomed = _directive_list(DELETE_FROM + key, value, path)
    if any(isinstance(v, dict | list) for v in doomed):
        raise _bad(f"{path}.{key}: $deleteFromPrimitiveList takes primitive values only")
    current = original.get(key)
    if isinstance(current, list):
        original[key] = [v for v in current if v not in doomed]


def _merge_list(original: list[Any], patch: list[Any], schema: FieldSchema,
                order: list[Any] | None, path: str) -> list[Any]:
    """Merge a patch list into an original list per the field's strategy."""
    if schema.merge_key and schema.merges_list:
        merged = _merge_keyed_list(original, patch, schema, path)
    elif schema.merges_list:
        merged = _merge_primitive_list(original, patch, path)
    else:
        return [_clean(item, schema, path) for item in patch]
    return _apply_order(merged, original, order, schema) if order is not None else merged


def _clean(item: Any, schema: FieldSchema, path: str) -> Any:
    """Return a replacement list item without directives or nulls."""
    return _merge_map({}, item, schema, path) if isinstance(item, dict) else item


def _merge_primitive_list(original: list[Any], patch: list[Any], path: str) -> list[Any]:
    """Merge a list of primitives as a set, keeping the original order first."""
    merged = list(original)
    for item in patch:
        if isinstance(item, dict | list):
            raise _bad(f"{path}: expected primitive list items, got {json.dumps(item)}")
        if item not in merged:
            merged.append(item)
    return merged


def _merge_keyed_list(original: list[Any], patch: list[Any], schema: FieldSchema,
                      path: str) -> list[Any]:
    """Merge a list of maps item by item on the schema's patch merge key."""
    key = schema.merge_key
    assert key is not None
    items = [p for p in patch if not (isinstance(p, dict) and p.get(PATCH) == "replace")]
    if len(items) != len(patch):
        return [_clean(item, schema, path) for item in items
                if not (isinstance(item, dict) and item.get(PATCH) == "delete")]
    merged = list(original)
    for item in items:
        if not isinstance(item, dict):
            raise _bad(f"{path}: list items must be maps merged by {key!r}, "
                       f"got {json.dumps(item)}")
        if key not in item:
            raise _bad(f"{path}: map {json.dumps(item)} does not contain declared merge key "
                       f"{key!r}")
        where = _find(merged, key, item[key])
        item_path = f"{path}[{key}={json.dumps(item[key])}]"
        directive = item.get(PATCH)
        if directive == "delete":
            merged = [m for m in merged if not (isinstance(m, dict) and m.get(key) == item[key])]
        elif directive not in (None, "merge"):
            raise _bad(f"{item_path}: unknown $patch directive {directive!r} in a list item")
        elif where is None:
            merged.append(_merge_map({}, item, schema, item_path))
        else:
            merged[where] = _merge_map(merged[where], item, schema, item_path)
    return merged


def _find(items: list[Any], key: str, value: Any) -> int | None:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get(key) == value:
            return i
    return None


def _identity(item: Any, schema: FieldSchema) -> Any:
    """Return what $setElementOrder names an item by: its merge key value, or itself."""
    if schema.merge_key and isinstance(item, dict):
        return json.dumps(item.get(schema.merge_key), sort_keys=True)
    return json.dumps(item, sort_keys=True)


def _apply_order(merged: list[Any], server: list[Any], order: list[Any],
                 schema: FieldSchema) -> list[Any]:
    """Order merged per $setElementOrder; items it does not name keep their server place."""
    rank = {_identity(o, schema): i for i, o in enumerate(order)}
    server_rank = {_identity(s, schema): i for i, s in enumerate(server)}
    named = sorted((m for m in merged if _identity(m, schema) in rank),
                   key=lambda m: rank[_identity(m, schema)])
    unnamed = [m for m in merged if _identity(m, schema) not in rank]
    result: list[Any] = []
    while named and unnamed:
        left = server_rank.get(_identity(named[0], schema))
        right = server_rank.get(_identity(unnamed[0], schema))
        # A named item goes first only when both were on the server and it came first there.
        if left is not None and right is not None and left < right:
            result.append(named.pop(0))
        else:
            result.append(unnamed.pop(0))
    return result + named + unnamed
