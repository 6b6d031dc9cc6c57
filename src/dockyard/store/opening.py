"""Open the Store a server option names: a SQLite file path or an etcd client URL.

``open_store("/var/lib/dockyard/state.db")`` opens (creating) the embedded SQLite store;
``open_store("http://10.0.0.5:2379")`` (or ``etcd://10.0.0.5:2379``) connects to etcd through
its JSON gateway. One string, so ``dockyard server --store ...`` needs a single option.
"""

from __future__ import annotations

from pathlib import Path

from dockyard.store.base import Store, StoreError
from dockyard.store.etcd import EtcdStore
from dockyard.store.sqlite import SQLiteStore


async def open_store(spec: str, *, history_seconds: float = 300.0) -> Store:
    """Open the store spec names: an etcd URL (http://, https://, etcd://) or a SQLite path."""
    if not spec:
        raise StoreError("no store given: pass a SQLite file path or an etcd URL")
    if spec.startswith(("http://", "https://")):
        return await EtcdStore.open(spec, history_seconds=history_seconds)
    if spec.startswith("etcd://"):
        return await EtcdStore.open(
            "http://" + spec.removeprefix("etcd://"), history_seconds=history_seconds
        )
    path = Path(spec.removeprefix("sqlite://"))
    return await SQLiteStore.open(path, history_seconds=history_seconds)
