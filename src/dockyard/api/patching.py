"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch.

apply_patch() is what the api server's PATCH handler calls for every patch type except
server-side apply (`application/apply-patch+yaml`, see dockyard.api.apply). It picks the
algorithm from the request's Content-Type, as Kubernetes does.

JSON patch uses the `jsonpatch` library (a well-kept RFC 6902 implementation, `test` op
included) rather than our own code; merge patch is the dozen lines RFC 7386 gives.

Invariants: the object passed in is never mutated; the result is always a JSON object.
Errors are PatchError with the status Kubernetes answers: 415 for a media type that is not
a patch type, 400 BadRequest for a body that is not a well-formed patch of its type, 422
Invalid for a well-formed patch that cannot apply (a failed `test`, a path that does not
exist, a result that is not an object).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import orjson

from dockyard.api.decoding import json_number
from dockyard.api.patch_schema import PatchError, json_copy, schema_for
from dockyard.api.strategic import strategic_merge

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "PatchError",
    "apply_patch",
    "merge_patch",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)


def apply_patch(obj: dict[str, Any], patch_body: bytes, content_type: str,
                kind: str) -> dict[str, Any]:
    """Return a copy of obj with the patch body applied per its Content-Type."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in PATCH_TYPES:
        raise PatchError(
            415, "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types "
            f"include: {', '.join(PATCH_TYPES)}, application/apply-patch+yaml "
            f"(got {content_type!r})",
        )
    try:
        result = _apply(obj, _parse_json(patch_body, media_type), media_type, kind)
    except RecursionError:
        raise PatchError(400, "BadRequest", "the patch or the object is nested too deeply"
                         ) from None
    if not isinstance(result, dict):
        raise PatchError(422, "Invalid", "the patched object is not a JSON object")
    return result


def _apply(obj: dict[str, Any], patch: Any, media_type: str, kind: str) -> Any:
    if media_type == JSON_PATCH:
        return _json_patch(obj, patch)
    if not isinstance(patch, dict):
        raise PatchError(400, "BadRequest",
                         f"{media_type} body must be a JSON object, got {type(patch).__name__}")
    if media_type == MERGE_PATCH:
        return merge_patch(json_copy(obj), patch)
    return strategic_merge(obj, patch, schema_for(kind))


def _parse_json(body: bytes, media_type: str) -> Any:
    try:
        patch = json.loads(body, parse_int=json_number, parse_constant=_refuse_constant)
        orjson.dumps(patch)  # what the store could not write back is refused now
        return patch
    except orjson.JSONEncodeError as exc:
        raise PatchError(400, "BadRequest",
                         f"{media_type} body holds a value JSON cannot carry: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PatchError(400, "BadRequest",
                         f"{media_type} body is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno} (char {exc.pos})") from exc
    except UnicodeDecodeError as exc:
        raise PatchError(400, "BadRequest",
                         f"{media_type} body is not UTF-8: {exc.reason} at byte {exc.start}"
                         ) from exc
    except ValueError as exc:
        raise PatchError(400, "BadRequest", f"{media_type} body is not valid JSON: {exc}"
                         ) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_patch(obj: dict[str, Any], patch: Any) -> Any:
    """Apply an RFC 6902 patch document (a list of operations), naming the failing one."""
    if not isinstance(patch, list):
        raise PatchError(400, "BadRequest",
                         "application/json-patch+json body must be a JSON array of operations, "
                         f"got {type(patch).__name__}")
    try:
        # One JsonPatch per operation (the constructor checks each) to name the one that fails.
        ops = [jsonpatch.JsonPatch([op]) for op in patch]
    except (jsonpatch.InvalidJsonPatch, TypeError, KeyError, AttributeError) as exc:
        raise PatchError(400, "BadRequest", f"malformed json patch: {exc}") from exc
    doc: Any = json_copy(obj)
    for index, op in enumerate(ops):
        doc = _json_patch_op(doc, op, index)
    return doc


def _json_patch_op(doc: Any, op: jsonpatch.JsonPatch, index: int) -> Any:
    spec = op.patch[0]
    where = f"operation {index} ({spec.get('op')} {spec.get('path')!r})"
    try:
        return op.apply(doc, in_place=True)
    except jsonpatch.JsonPatchTestFailed:
        found = jsonpatch.JsonPointer(spec["path"]).resolve(doc, None)
        raise PatchError(422, "Invalid",
                         f"json patch {where} failed: the value is {json.dumps(found)}, not "
                         f"{json.dumps(spec.get('value'))}") from None
    except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPointerException) as exc:
        raise PatchError(422, "Invalid", f"json patch {where} cannot apply: {exc}") from None
    except (jsonpatch.InvalidJsonPatch, TypeError, KeyError, AttributeError) as exc:
        raise PatchError(400, "BadRequest", f"malformed json patch {where}: {exc}") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """Return target with an RFC 7386 JSON merge patch applied (target is not changed)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
