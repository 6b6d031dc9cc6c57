"""Open the Store a server option names: a SQLite file path or etcd client URLs.

One string, so ``dockyard server --store ...`` needs a single option:
- ``/var/lib/dockyard/state.db`` or ``sqlite:///var/lib/dockyard/state.db``: the embedded
  SQLite store (created if missing; its directory must exist);
- ``etcd://10.0.0.5:2379`` or ``etcd://10.0.0.5:2379,10.0.0.6:2379``: etcd members over plain
  HTTP; ``etcd+https://...`` the same over TLS, checked against ``EtcdTLS.ca_file`` (the system's
  CAs when empty) and presenting ``cert_file``/``key_file`` when given;
- ``http://...`` / ``https://...`` client URLs (comma-separated), as etcdctl takes them.

Invariant: opening checks etcd answers before returning, so a caller that opens the store
before writing anything writes nothing when etcd is unreachable.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from dockyard.store.base import Store, StoreError
from dockyard.store.etcd import EtcdStore
from dockyard.store.sqlite import SQLiteStore

_SCHEMES = {"etcd://": "http://", "etcd+http://": "http://", "etcd+https://": "https://",
            "http://": "http://", "https://": "https://"}  # fmt: skip


@dataclass(frozen=True)
class EtcdTLS:
    """Files for TLS to etcd (etcdctl's --cacert, --cert, --key); empty means not given."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def given(self) -> bool:
        """Tell whether any file was named."""
        return bool(self.ca_file or self.cert_file or self.key_file)


def is_etcd(spec: str) -> bool:
    """Tell whether a store spec names etcd rather than a SQLite file."""
    return spec.startswith(tuple(_SCHEMES))


def etcd_endpoints(spec: str) -> list[str]:
    """Return the client URLs an etcd spec names (``etcd://a:1,b:2`` → two http:// URLs)."""
    scheme = next((s for s in sorted(_SCHEMES, key=len, reverse=True) if spec.startswith(s)), "")
    if not scheme:
        raise StoreError(f"{spec!r} is not an etcd URL (etcd://host:port or etcd+https://...)")
    urls = []
    for member in spec.removeprefix(scheme).split(","):
        member = member.strip().removeprefix(scheme).rstrip("/")
        if not member or "/" in member:
            raise StoreError(f"bad etcd member {member!r} in {spec!r}: give host:port")
        urls.append(_SCHEMES[scheme] + member)
    return urls


def etcd_ssl_context(tls: EtcdTLS) -> ssl.SSLContext:
    """Return the TLS context for etcd: its CA (or the system's) and our client pair if given."""
    if bool(tls.cert_file) != bool(tls.key_file):
        raise StoreError("--etcd-certfile and --etcd-keyfile go together: give both or neither")
    try:
        context = ssl.create_default_context(cafile=tls.ca_file or None)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as err:
        raise StoreError(f"cannot load the etcd TLS files: {err}") from err
    return context


async def open_store(
    spec: str, *, history_seconds: float = 300.0, tls: EtcdTLS | None = None
) -> Store:
    """Open the store spec names: etcd URLs (etcd://, etcd+https://, http://) or a SQLite path."""
    if not spec:
        raise StoreError("no store given: pass a SQLite file path or an etcd URL")
    if not is_etcd(spec):
        if tls is not None and tls.given():
            raise StoreError(f"etcd TLS files given, but the store {spec!r} is not etcd")
        path = Path(spec.removeprefix("sqlite://"))
        return await SQLiteStore.open(path, history_seconds=history_seconds)
    endpoints = etcd_endpoints(spec)
    secure = [url for url in endpoints if url.startswith("https://")]
    if tls is not None and tls.given() and not secure:
        raise StoreError(f"etcd TLS files given, but {spec!r} is plain HTTP: use etcd+https://")
    context = etcd_ssl_context(tls or EtcdTLS()) if secure else None
    return await EtcdStore.open(endpoints, history_seconds=history_seconds, ssl_context=context)
