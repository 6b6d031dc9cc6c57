"""Pure parts of the API client: paths, query strings, Status errors, watch stream parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from dockyard.client.api import (
    PATCH_CONTENT_TYPES,
    WatchEvent,
    _retry_after,
    parse_watch_stream,
    query_params,
    resource_path,
)
from dockyard.client.errors import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    GoneError,
    InvalidError,
    NotFoundError,
    ServerUnreachableError,
    UnauthorizedError,
    error_from_status,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (("v1", "pods", "default"), "/api/v1/namespaces/default/pods"),
        (("v1", "pods", "default", "web-1"), "/api/v1/namespaces/default/pods/web-1"),
        (("v1", "pods", "default", "web-1", "binding"),
         "/api/v1/namespaces/default/pods/web-1/binding"),
        (("v1", "pods", None), "/api/v1/pods"),
        (("v1", "nodes", None, "n1", "status"), "/api/v1/nodes/n1/status"),
        (("v1", "namespaces", None, "kube-system"), "/api/v1/namespaces/kube-system"),
        (("apps/v1", "deployments", "ns", "web", "scale"),
         "/apis/apps/v1/namespaces/ns/deployments/web/scale"),
        (("rbac.authorization.k8s.io/v1", "clusterroles", None, "system:node"),
         "/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Anode"),
    ],
)
def test_resource_path(args: tuple[str, ...], path: str) -> None:
    assert resource_path(*args) == path


def test_resource_path_rejects_empty_name_and_orphan_subresource() -> None:
    with pytest.raises(ValueError, match="name is required"):
        resource_path("v1", "pods", "default", "")
    with pytest.raises(ValueError, match="needs an object name"):
        resource_path("v1", "pods", "default", None, "status")


def test_query_params_drop_none_and_spell_bools() -> None:
    assert query_params({"watch": True, "follow": False, "limit": 500, "x": None}) == {
        "watch": "true", "follow": "false", "limit": "500"}


def test_patch_content_types_are_kubernetes_media_types() -> None:
    assert PATCH_CONTENT_TYPES == {
        "merge": "application/merge-patch+json",
        "strategic": "application/strategic-merge-patch+json",
        "json": "application/json-patch+json",
        "apply": "application/apply-patch+yaml",
    }


def status(code: int, reason: str, message: str = "m", **details: object) -> dict[str, object]:
    body: dict[str, object] = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "code": code, "reason": reason, "message": message}
    if details:
        body["details"] = details
    return body


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (404, "NotFound", NotFoundError),
        (409, "Conflict", ConflictError),
        (409, "AlreadyExists", AlreadyExistsError),
        (410, "Expired", GoneError),
        (410, "Gone", GoneError),
        (422, "Invalid", InvalidError),
        (401, "Unauthorized", UnauthorizedError),
        (500, "InternalError", ApiError),
    ],
)
def test_status_maps_to_error_class(code: int, reason: str, cls: type[ApiError]) -> None:
    err = error_from_status(code, status(code, reason, "boom"))
    assert type(err) is cls
    assert (err.status, err.reason, err.message) == (code, reason, "boom")


def test_already_exists_is_a_conflict() -> None:
    assert isinstance(error_from_status(409, status(409, "AlreadyExists")), ConflictError)


def test_invalid_error_carries_causes() -> None:
    causes = [{"reason": "FieldValueRequired", "message": "Required value",
               "field": "spec.containers"}]
    err = error_from_status(422, status(422, "Invalid", name="p", kind="Pod", causes=causes))
    assert err.causes == causes
    assert err.details["name"] == "p"


def test_non_status_body_keeps_the_text() -> None:
    err = error_from_status(502, None, "Bad Gateway\n")
    assert type(err) is ApiError
    assert err.message == "Bad Gateway" and err.status == 502


def test_unreachable_message_says_what_to_do() -> None:
    err = ServerUnreachableError("https://127.0.0.1:6443", "Connection refused")
    assert str(err).startswith("no server at https://127.0.0.1:6443 — start one with "
                               "`dockyard server`")
    assert "certificate-authority" in str(ServerUnreachableError("https://h", "bad", kind="tls"))


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(stream: AsyncIterator[WatchEvent]) -> list[WatchEvent]:
    return [e async for e in stream]


def line(type_: str, name: str, rv: str) -> bytes:
    obj = {"kind": "Pod", "metadata": {"name": name, "resourceVersion": rv}}
    return orjson.dumps({"type": type_, "object": obj}) + b"\n"


async def test_watch_stream_reassembles_events_split_across_chunks() -> None:
    data = line("ADDED", "a", "1") + line("MODIFIED", "a", "2") + line("DELETED", "a", "3")
    # Split at awkward places: inside JSON and right after a newline.
    parts = [data[:7], data[7:40], data[40:len(line("ADDED", "a", "1"))], data[
        len(line("ADDED", "a", "1")):-3], data[-3:]]
    events = await collect(parse_watch_stream(chunks(*parts)))
    assert [(e.type, e.object["metadata"]["resourceVersion"]) for e in events] == [
        ("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "3")]


async def test_watch_stream_last_line_without_newline_and_blank_lines() -> None:
    data = b"\n" + line("ADDED", "a", "1") + b"\r\n" + line("ADDED", "b", "2").rstrip()
    events = await collect(parse_watch_stream(chunks(data)))
    assert [e.object["metadata"]["name"] for e in events] == ["a", "b"]


async def test_watch_stream_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a JSON event"):
        await collect(parse_watch_stream(chunks(b"<html>\n")))
    with pytest.raises(ValueError, match="without type/object"):
        await collect(parse_watch_stream(chunks(b'{"type":"ADDED"}\n')))


class FakeResponse:
    """Just the status and headers _retry_after reads."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status, self.headers = status, headers


@pytest.mark.parametrize(
    ("status_code", "headers", "expected"),
    [
        (429, {"Retry-After": "3"}, 3.0),
        (429, {}, 1.0),  # throttled without a hint: try again in a second
        (503, {"Retry-After": "2"}, 2.0),
        (503, {}, None),  # a plain server error is not "retry later"
        (409, {"Retry-After": "2"}, None),
        (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 1.0),
    ],
)
def test_retry_after(status_code: int, headers: dict[str, str], expected: float | None) -> None:
    assert _retry_after(FakeResponse(status_code, headers)) == expected  # type: ignore[arg-type]
