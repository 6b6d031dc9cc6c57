"""The build cache: what each filesystem-changing build step produced, by cache key.

A key is a sha256 chained from the base image's manifest digest through every instruction
(see builder.py for what each instruction adds: its text after expansion, RUN's environment,
user, working dir and network, the content digest of the files COPY/ADD read). The value is
the layer the step made, or "no change".

Invariants: entries live under DATA_DIR/images/buildcache/<key hex>, written to tmp/ and
renamed, so a reader never sees half an entry; an entry whose layer blob is gone (garbage
collected) is a miss, never an error; a damaged entry is a miss and is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from dockyard.images.digest import digest_hex
from dockyard.images.store import ImageStore, LayerDescriptor


@dataclass(frozen=True)
class CacheHit:
    """A cached step result: its layer, or None when the step changed no file."""

    layer: LayerDescriptor | None


def chain_key(parent: str, *parts: Any) -> str:
    """Return the cache key of a step: sha256 over the parent key and the step's parts."""
    payload = json.dumps([parent, *parts], sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


class BuildCache:
    """Step results by cache key, beside the image store."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.root = store.root / "buildcache"
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> CacheHit | None:
        """Return the cached result of the step with `key`, or None on a miss."""
        path = self.root / digest_hex(key)
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            return None
        layer = record.get("layer")
        if layer is None:
            return CacheHit(None)
        try:
            descriptor = LayerDescriptor(
                str(layer["digest"]), str(layer["diff_id"]), int(layer["size"]),
                str(layer["media_type"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            path.unlink(missing_ok=True)
            return None
        if not self.store.has_blob(descriptor.digest):
            return None
        return CacheHit(descriptor)

    def put(self, key: str, layer: LayerDescriptor | None) -> None:
        """Record the result of the step with `key`."""
        record: dict[str, Any] = {"layer": None}
        if layer is not None:
            record["layer"] = {"digest": layer.digest, "diff_id": layer.diff_id,
                               "size": layer.size, "media_type": layer.media_type}
        fd, tmp = tempfile.mkstemp(dir=self.store.tmp_dir, prefix="cache.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            os.rename(tmp, self.root / digest_hex(key))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def clear(self) -> int:
        """Remove every entry; return how many there were."""
        count = 0
        for path in self.root.iterdir():
            path.unlink(missing_ok=True)
            count += 1
        return count
