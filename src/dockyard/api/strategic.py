"""Strategic merge patch, as the Kubernetes api server applies it.

A strategic merge patch is a JSON merge patch that knows the schema: lists of maps with a
patch merge key (containers by name, ports by containerPort...) are merged item by item
instead of replaced, primitive lists with patch strategy "merge" (finalizers) are merged as
sets, and the patch may carry directives:

- `null` deletes a key;
- `$patch: replace` (in a map: use this map as is; as a list item: replace the whole list),
  `$patch: delete` (in a map: clear it; as a list item: delete the item with that key),
  `$patch: merge` (the default; accepted in a map, refused in a list item);
- `$retainKeys: [..]` keeps only the named keys of the original map (unions such as
  a volume source or a deployment strategy);
- `$deleteFromPrimitiveList/<field>: [..]` removes values from a primitive list;
- `$setElementOrder/<field>: [..]` gives the order of the merged list; items the patch does
  not name keep their place relative to the others.

Invariants: the original is never mutated (the caller passes a copy or gets a new dict);
directives never leak into the result; a structurally bad patch (no merge key, an unknown
directive, content outside its own `$retainKeys`, a `$setElementOrder` that contradicts the
patch list) raises PatchError 400 BadRequest, as in Kubernetes. Merged lists are ordered as
Kubernetes orders them: the items the patch names in the patch's order (or
`$setElementOrder`'s), interleaved with the live items it does not name, which keep their
live order; a brand-new item therefore lands before the live items.

The code follows the semantics of k8s.io/apimachinery's strategicpatch package, written
anew: no Python library implements them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from dockyard.api.patch_schema import FieldSchema, PatchError, json_copy

PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_FROM = "$deleteFromPrimitiveList/"
_DIRECTIVES = ("replace", "delete", "merge")


def strategic_merge(original: dict[str, Any], patch: dict[str, Any],
                    schema: FieldSchema) -> dict[str, Any]:
    """Return original with a strategic merge patch applied under the given schema."""
    return _merge_map(json_copy(original), patch, schema, "")


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
            original[key] = _normalize_order(original[key], order, original[key],
                                             schema.child(key))
    return original


def _merge_field(original: dict[str, Any], key: str, value: Any, schema: FieldSchema,
                 order: list[Any] | None, path: str) -> None:
    """Merge one patch field into original[key]."""
    if value is None:
        original.pop(key, None)
        return
    current = original.get(key)
    if isinstance(value, dict):
        if not isinstance(current, dict) and value.get(PATCH) == "delete":
            original.pop(key, None)  # nothing to clear: Kubernetes leaves the key out
            return
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
            raise _bad(f"{path or '.'}: the patch sets {key!r}, which is not in $retainKeys "
                       f"{retain}")
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
    server_order = original
    if schema.merge_key and schema.merges_list:
        merged, patch_items, server_order = _merge_keyed_list(original, patch, schema, path)
    elif schema.merges_list:
        merged = _merge_primitive_list(original, patch, path)
        patch_items = patch
    else:
        return [_clean(item, schema, path) for item in patch]
    # Items named by the patch take the patch's order; the others keep the live order.
    merged = _normalize_order(merged, patch_items, original, schema)
    if order is None:
        return merged
    _check_order(order, patch_items, schema, path)
    return _normalize_order(merged, order, server_order, schema)


def _check_order(order: list[Any], patch_items: list[Any], schema: FieldSchema,
                 path: str) -> None:
    """Refuse a $setElementOrder list that does not name the patch items in their order."""
    ranks = {_identity(o, schema): i for i, o in enumerate(order)}
    last = -1
    for item in patch_items:
        rank = ranks.get(_identity(item, schema))
        if rank is None or rank < last:
            raise _bad(f"{path}: $setElementOrder must list every item of the patch list in "
                       f"the same order ({json.dumps(item)} is missing or out of order)")
        last = rank


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
                      path: str) -> tuple[list[Any], list[Any], list[Any]]:
    """Merge a list of maps item by item on the schema's merge key.

    Returns the merged list, the patch items that name list entries (the ones that set the
    order, directives excluded), and the server order that $setElementOrder compares with.
    """
    key = schema.merge_key
    assert key is not None
    plain: list[dict[str, Any]] = []
    doomed: list[Any] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise _bad(f"{path}: list items must be maps merged by {key!r}, "
                       f"got {json.dumps(item)}")
        directive = item.get(PATCH)
        if directive is None:
            if key not in item:
                raise _bad(f"{path}: map {json.dumps(item)} does not contain declared merge "
                           f"key {key!r}")
            plain.append(item)
        elif directive == "replace":
            replace = True
        elif directive == "delete":
            if key not in item:
                raise _bad(f"{path}: $patch: delete item {json.dumps(item)} does not contain "
                           f"declared merge key {key!r}")
            doomed.append(item[key])
        elif directive == "merge":
            raise _bad(f"{path}: $patch: merge is not supported in a list item")
        else:
            raise _bad(f"{path}: unknown $patch directive {directive!r} in a list item")
    if replace:
        return [_clean(item, schema, path) for item in plain], [], original
    # Kubernetes deletes and appends in place in the live list's storage (Go slices), and its
    # $setElementOrder step then reads the live order from that same storage; `backing`
    # replays this so that orders come out as Kubernetes gives them.
    backing = list(original)
    size = len(backing)
    for value in doomed:
        while (where := _find(backing[:size], key, value)) is not None:
            backing[where:size - 1] = backing[where + 1:size]
            size -= 1
    for item in plain:
        item_path = f"{path}[{key}={json.dumps(item[key])}]"
        where = _find(backing[:size], key, item[key])
        if where is not None:
            backing[where] = _merge_map(backing[where], item, schema, item_path)
            continue
        new = _merge_map({}, item, schema, item_path)
        if size < len(backing):
            backing[size] = new
        else:
            backing.append(new)
        size += 1
    return backing[:size], plain, backing[:len(original)]


def _find(items: list[Any], key: str, value: Any) -> int | None:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get(key) == value:
            return i
    return None


def _identity(item: Any, schema: FieldSchema) -> Any:
    """Return what $setElementOrder names an item by: its merge key value, or itself."""
    if schema.merge_key and isinstance(item, dict):
        item = item.get(schema.merge_key)
    if isinstance(item, str | bool | None):
        return (type(item).__name__, item)  # the common case, without serialising
    try:
        return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(item, sort_keys=True)


def _normalize_order(merged: list[Any], order: list[Any], server: list[Any],
                     schema: FieldSchema) -> list[Any]:
    """Order items as Kubernetes does: named items by `order`, the rest by `server`.

    The two groups are then interleaved: a server-only item goes before a named item only
    when both are on the server and it came first there.
    """
    rank = {_identity(o, schema): i for i, o in enumerate(order)}
    server_rank = {_identity(s, schema): i for i, s in enumerate(server)}
    named = sorted((m for m in merged if _identity(m, schema) in rank),
                   key=lambda m: rank[_identity(m, schema)])
    server_only = sorted((m for m in merged if _identity(m, schema) not in rank),
                         key=lambda m: server_rank.get(_identity(m, schema), len(server)))
    result: list[Any] = []
    i = j = 0
    while i < len(server_only) and j < len(named):
        left = server_rank.get(_identity(server_only[i], schema))
        right = server_rank.get(_identity(named[j], schema))
        if left is not None and right is not None and left < right:
            result.append(server_only[i])
            i += 1
        else:
            result.append(named[j])
            j += 1
    return result + server_only[i:] + named[j:]
