"""Shared test fixtures: a real dockyard server per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.etcds import RunningEtcd, etcd_installed, start_etcd
from tests.servers import RunningServer, start_server


@pytest.fixture(scope="module")
def dockyard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A `dockyard server --no-agent --no-controllers` on a free port, for the module's tests.

    The api server and scheduler only: controller tests run their own ControllerManager
    against it, so the server must not run a second one.
    """
    data_dir: Path = tmp_path_factory.mktemp("server") / "data"
    server = start_server(data_dir, controllers=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[RunningEtcd]:
    """A real etcd on free loopback ports, data under the test's tmp dir, stopped after it."""
    if not etcd_installed():
        pytest.skip("etcd is not installed here (apt-get install etcd-server)")
    running = start_etcd(tmp_path / "etcd")
    try:
        yield running
    finally:
        running.stop()
