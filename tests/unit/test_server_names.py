"""The serving certificate covers what agents dial."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.server import ServerOptions, certificate_names

pytestmark = pytest.mark.unit


def test_listen_address_and_extra_names_are_covered() -> None:
    names = certificate_names(ServerOptions(Path("/d"), tls_sans=["k8s.example", "10.0.0.9"]))
    assert names[:3] == ["127.0.0.1", "k8s.example", "10.0.0.9"]


def test_every_address_adds_this_machines_addresses() -> None:
    names = certificate_names(ServerOptions(Path("/d"), listen="0.0.0.0"))
    assert names[0] == "0.0.0.0" and len(names) > 1
