"""How a --store value names etcd members, and which TLS file combinations are refused."""

from __future__ import annotations

import pytest

from dockyard.store.base import StoreError
from dockyard.store.opening import EtcdTLS, etcd_endpoints, etcd_ssl_context, is_etcd, open_store

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("spec", "urls"), [
    ("etcd://10.0.0.5:2379", ["http://10.0.0.5:2379"]),
    ("etcd://a:2379,b:2379", ["http://a:2379", "http://b:2379"]),
    ("etcd+https://a:2379, b:2379/", ["https://a:2379", "https://b:2379"]),
    ("etcd+http://a:1", ["http://a:1"]),
    ("http://a:1,http://b:2", ["http://a:1", "http://b:2"]),  # etcdctl's --endpoints form
    ("https://a:1", ["https://a:1"]),
])  # fmt: skip
def test_endpoints_of_a_spec(spec: str, urls: list[str]) -> None:
    assert is_etcd(spec)
    assert etcd_endpoints(spec) == urls


@pytest.mark.parametrize("spec", ["/var/lib/dockyard/state.db", "sqlite:///tmp/x.db", "state.db"])
def test_sqlite_specs_are_not_etcd(spec: str) -> None:
    assert not is_etcd(spec)


@pytest.mark.parametrize("spec", ["etcd://", "etcd://a:1,,b:2", "etcd://a:1/prefix"])
def test_bad_members_are_named(spec: str) -> None:
    with pytest.raises(StoreError, match="bad etcd member"):
        etcd_endpoints(spec)


def test_a_certificate_needs_its_key() -> None:
    with pytest.raises(StoreError, match="give both or neither"):
        etcd_ssl_context(EtcdTLS(cert_file="/x.crt"))


def test_missing_tls_files_are_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(StoreError, match="cannot load the etcd TLS files"):
        etcd_ssl_context(EtcdTLS(ca_file="/nonexistent/ca.crt"))


async def test_tls_files_for_plain_http_are_refused() -> None:
    with pytest.raises(StoreError, match="use etcd\\+https://"):
        await open_store("etcd://127.0.0.1:1", tls=EtcdTLS(ca_file="/ca.crt"))


async def test_tls_files_for_sqlite_are_refused() -> None:
    with pytest.raises(StoreError, match="is not etcd"):
        await open_store("/tmp/state.db", tls=EtcdTLS(ca_file="/ca.crt"))
