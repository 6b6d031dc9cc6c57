"""Opening the etcd store the way `dockyard server --store` does: several members, TLS, errors.

Real etcd processes (tests/etcds.py) on free loopback ports, stopped by PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.store.base import StoreError
from dockyard.store.etcd import EtcdStore
from dockyard.store.opening import EtcdTLS, open_store
from tests.etcds import RunningEtcd, etcd_installed, free_port, make_etcd_certs, start_etcd

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not etcd_installed(), reason="apt-get install etcd-server"),
]


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[RunningEtcd]:
    running = start_etcd(tmp_path / "plain")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEtcd]:
    workdir = tmp_path_factory.mktemp("tls-etcd")
    running = start_etcd(workdir, make_etcd_certs(workdir / "certs"))
    yield running
    running.stop()


async def test_a_dead_member_first_is_skipped(etcd: RunningEtcd) -> None:
    host = etcd.url.removeprefix("http://")
    store = await open_store(f"etcd://127.0.0.1:{free_port()},{host}")
    try:
        assert isinstance(store, EtcdStore) and store.endpoint == etcd.url
        created = await store.create("/registry/pods/default/a", b"{}")
        assert (await store.get("/registry/pods/default/a")) == created
    finally:
        await store.close()


async def test_calls_move_to_the_next_member_when_one_cannot_be_reached(
    etcd: RunningEtcd,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store = await EtcdStore.open([etcd.url, dead])
    try:
        store.endpoints = [dead, etcd.url]  # as if the member we used had just gone away
        store.endpoint = dead
        await store.create("/registry/pods/default/b", b"{}")
        assert store.endpoint == etcd.url
    finally:
        await store.close()


async def test_no_member_answering_names_every_url() -> None:
    first, second = free_port(), free_port()
    with pytest.raises(StoreError) as caught:
        await open_store(f"etcd://127.0.0.1:{first},127.0.0.1:{second}")
    message = str(caught.value)
    assert f"cannot reach etcd at http://127.0.0.1:{first}" in message
    assert f"http://127.0.0.1:{second}" in message


async def test_tls_with_a_client_certificate(tls_etcd: RunningEtcd) -> None:
    certs = tls_etcd.certs
    assert certs is not None
    tls = EtcdTLS(str(certs.ca), str(certs.client_cert), str(certs.client_key))
    store = await open_store(tls_etcd.store_spec, tls=tls)
    try:
        await store.create("/registry/pods/default/tls", b"{}")
        watch = store.watch("/registry/pods/default/", 0)
        event = await anext(watch)
        assert event.kv.key == "/registry/pods/default/tls"
        await watch.aclose()
    finally:
        await store.close()


async def test_tls_without_our_client_certificate_is_refused(tls_etcd: RunningEtcd) -> None:
    assert tls_etcd.certs is not None
    with pytest.raises(StoreError, match="cannot reach etcd at https://127.0.0.1"):
        await open_store(tls_etcd.store_spec, tls=EtcdTLS(ca_file=str(tls_etcd.certs.ca)))


async def test_tls_against_an_unknown_ca_says_verification_failed(
    tls_etcd: RunningEtcd, tmp_path: Path
) -> None:
    other = make_etcd_certs(tmp_path / "other")
    with pytest.raises(StoreError, match="TLS verification failed"):
        await open_store(tls_etcd.store_spec, tls=EtcdTLS(str(other.ca), str(other.client_cert),
                                                          str(other.client_key)))
