"""Watch streams: a store's changes as Kubernetes watch events over chunked HTTP.

Semantics (as kube-apiserver): no resourceVersion or "0" first sends the current objects as
ADDED, then changes after the list's revision; a resourceVersion N sends every change after N;
one older than the store's history gets an ERROR event with a 410 Expired Status (clients
re-list); one newer than the store's revision gets a 504 ResourceVersionTooLarge after a short
wait. With selectors, an object that starts matching is ADDED and one that stops matching is
DELETED, so a client's cache stays exactly the filtered set. Each event is one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from dockyard.api import status
from dockyard.api.storage import (
    ResourceStorage,
    collection_prefix,
    decode,
    matches,
    parse_selectors,
)
from dockyard.objects.resources import ResourceInfo
from dockyard.objects.selectors import FieldSelector, LabelSelector
from dockyard.store.base import CompactedError, WatchEvent, WatchTooSlowError

DEFAULT_TIMEOUT_SECONDS = 1800
log = logging.getLogger(__name__)
FUTURE_WAIT_SECONDS = 3.0
Transform = Callable[[dict[str, Any]], dict[str, Any]]


async def serve_watch(
    request: web.Request,
    storage: ResourceStorage,
    info: ResourceInfo,
    namespace: str | None,
    *,
    label_selector: str,
    field_selector: str,
    resource_version: str,
    timeout_seconds: int | None,
    transform: Transform | None = None,
) -> web.StreamResponse:
    """Stream watch events for a collection until the timeout, the client, or shutdown."""
    labels, fields = parse_selectors(label_selector, field_selector, info.kind)
    initial: list[dict[str, Any]] = []
    if resource_version in ("", "0"):
        listed = await storage.list(
            info, namespace, label_selector=label_selector, field_selector=field_selector
        )
        initial, after = listed.items, listed.resource_version
    else:
        after = _parse_revision(resource_version)
        await _wait_for_revision(storage, after)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    shape = transform or (lambda obj: obj)
    for obj in initial:
        await response.write(_line("ADDED", shape(obj)))
    timeout = timeout_seconds if timeout_seconds and timeout_seconds > 0 else (
        DEFAULT_TIMEOUT_SECONDS
    )
    with contextlib.suppress(TimeoutError, ConnectionResetError, asyncio.CancelledError):
        async with asyncio.timeout(timeout):
            await _stream(response, storage, info, namespace, after, labels, fields, shape)
    return response


async def _stream(
    response: web.StreamResponse,
    storage: ResourceStorage,
    info: ResourceInfo,
    namespace: str | None,
    after: int,
    labels: LabelSelector | None,
    fields: FieldSelector | None,
    shape: Transform,
) -> None:
    events = storage.store.watch(collection_prefix(info, namespace), after)
    try:
        async for event in events:
            converted = _convert(event, labels, fields)
            if converted is not None:
                await response.write(_line(converted[0], shape(converted[1])))
    except CompactedError as error:
        expired = status.gone(
            f"too old resource version: {error.requested} ({error.oldest})"
        ).to_status()
        await response.write(_line("ERROR", expired))
    except WatchTooSlowError:
        # As kube-apiserver does with a watcher that cannot keep up: end the stream; the client
        # watches again from the last resourceVersion it saw.
        log.info("closing a watch on %s that fell too far behind", info.plural)
    finally:
        closer = getattr(events, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()


def _convert(
    event: WatchEvent, labels: LabelSelector | None, fields: FieldSelector | None
) -> tuple[str, dict[str, Any]] | None:
    """Return the Kubernetes event type and object for a store event, or None to skip it."""
    if event.type == "DELETE":
        obj = decode(event.kv)
        return ("DELETED", obj) if matches(obj, labels, fields) else None
    obj = decode(event.kv)
    now_matches = matches(obj, labels, fields)
    if event.prev is None:
        return ("ADDED", obj) if now_matches else None
    unfiltered = labels is None and fields is None
    was_matching = unfiltered or matches(decode(event.prev), labels, fields)
    if now_matches:
        return ("MODIFIED" if was_matching else "ADDED", obj)
    return ("DELETED", obj) if was_matching else None


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": event_type, "object": obj}) + b"\n"


def _parse_revision(resource_version: str) -> int:
    try:
        revision = int(resource_version)
    except ValueError:
        raise status.bad_request(
            f"invalid resourceVersion {resource_version!r}: it must be a number from a list "
            "or get"
        ) from None
    if revision < 0:
        raise status.bad_request(f"invalid resourceVersion {resource_version!r}")
    return revision


async def _wait_for_revision(storage: ResourceStorage, revision: int) -> None:
    """Wait briefly for a revision from the future, as kube-apiserver does, then refuse it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FUTURE_WAIT_SECONDS
    while (current := await storage.store.current_revision()) < revision:
        if loop.time() >= deadline:
            raise status.StatusError(
                504,
                "Timeout",
                f"Too large resource version: {revision}, current: {current}",
                details={"causes": [{"reason": "ResourceVersionTooLarge",
                                     "message": "Too large resource version"}],
                         "retryAfterSeconds": 1},
            )
        await asyncio.sleep(0.1)
