"""The etcd store's watch cache: one etcd watch on every key, fanned out inside the process.

Without it every api watch is its own ``/v3/watch`` stream: a thousand informers are a thousand
etcd connections, and each event is decoded once per watch. As the Kubernetes api server's
watch cache does, one stream feeds a ring of recent events and a ``Broadcaster`` (fanout.py). A
watch from a revision the ring covers takes its missed events from the ring and subscribes to
what comes next, with no await in between, so it misses nothing and sees nothing twice; a watch
from an older revision gets None from ``subscribe`` and opens a dedicated etcd watch instead.

The stream starts on the first subscribe, from that watch's revision (etcd replays the rest),
and after a failure the next subscribe starts a new one the same way.

Invariants:
- the ring holds every event (every key) with a revision in (covered, position], in order,
  at most RING_EVENTS of them and RING_BYTES of their values;
- a stream that fails ends its watchers, who then read its error (a StoreError); one that ends
  because the store closed ends them cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from dockyard.store.base import StoreError, WatchEvent
from dockyard.store.fanout import Broadcaster, Watcher

RING_EVENTS = 4096  # recent events kept for watches that start a little behind
# ... and at most this many bytes of values in them: an event holds its value and the previous
# one, up to 1.5 MiB each, so a count alone could pin gigabytes.
RING_BYTES = 64 * 1024 * 1024

OpenStream = Callable[[int], AsyncIterator[WatchEvent]]


class _Stream:
    """One etcd watch on every key from a revision, while it lasts."""

    def __init__(self, after: int) -> None:
        self.broadcaster = Broadcaster()
        self.ring: deque[WatchEvent] = deque()
        self.ring_bytes = 0
        self.covered = after
        self.position = after
        self.error: StoreError | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Tell whether the stream still delivers."""
        return self.task is not None and not self.task.done()


@dataclass
class Subscription:
    """A watch served by the cache: the ring's events after its revision, then the live ones."""

    replay: list[WatchEvent]
    watcher: Watcher
    stream: _Stream

    def close(self) -> None:
        """Stop receiving events (safe to call twice)."""
        self.stream.broadcaster.unsubscribe(self.watcher)
        self.watcher.end()


class WatchCache:
    """Fans one etcd watch out to every watch of this process that its ring covers."""

    def __init__(self, open_stream: OpenStream, ring_events: int = RING_EVENTS,
                 ring_bytes: int = RING_BYTES) -> None:  # fmt: skip
        self._open = open_stream
        self._ring_events = ring_events
        self._ring_bytes = ring_bytes
        self._stream: _Stream | None = None
        self._closed = False

    def subscribe(self, prefix: str, after: int) -> Subscription | None:
        """Return a subscription to changes under prefix after a revision, or None when the
        ring no longer holds that far back (the caller watches etcd directly)."""
        if self._closed:
            return None
        stream = self._stream
        if stream is None or not stream.running:
            stream = self._start(after)
        if after < stream.covered:
            return None
        replay = [e for e in stream.ring if e.revision > after and e.kv.key.startswith(prefix)]
        return Subscription(replay, stream.broadcaster.subscribe(prefix), stream)

    def _start(self, after: int) -> _Stream:
        stream = _Stream(after)
        stream.task = asyncio.create_task(self._run(stream), name="dockyard-etcd-watch-cache")
        self._stream = stream
        return stream

    async def _run(self, stream: _Stream) -> None:
        events = self._open(stream.position)
        try:
            async for event in events:
                self._append(stream, event)
        except StoreError as err:
            stream.error = err
        except Exception as err:  # anything else: still an error for the watchers, not an end
            stream.error = StoreError(f"the etcd watch cache's stream failed: {err!r}")
        finally:
            stream.broadcaster.close()
            closer = getattr(events, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    def _append(self, stream: _Stream, event: WatchEvent) -> None:
        stream.ring.append(event)
        stream.ring_bytes += _size(event)
        stream.position = event.revision
        while stream.ring and (len(stream.ring) > self._ring_events
                               or stream.ring_bytes > self._ring_bytes):
            evicted = stream.ring.popleft()
            stream.ring_bytes -= _size(evicted)
            stream.covered = evicted.revision
        stream.broadcaster.publish((event,))

    def watcher_count(self) -> int:
        """Return how many watches the current stream serves."""
        return len(self._stream.broadcaster) if self._stream is not None else 0

    async def close(self) -> None:
        """End the stream and every watcher."""
        self._closed = True
        stream = self._stream
        if stream is not None and stream.task is not None:
            stream.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream.task
            stream.broadcaster.close()


def _size(event: WatchEvent) -> int:
    return len(event.kv.value) + (len(event.prev.value) if event.prev is not None else 0)
