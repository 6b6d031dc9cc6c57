"""Pure parts of bootstrap: the Debian mirror read from apt's sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.images.bootstrap import DEFAULT_MIRROR, apt_mirror

pytestmark = pytest.mark.unit


def test_mirror_comes_from_apt_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
    )
    assert apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_one_line_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://m.example/debian-security bookworm-security main\n"
        "deb http://m.example/debian bookworm main\n"
    )
    assert apt_mirror(tmp_path) == "http://m.example/debian"


def test_default_mirror_without_sources(tmp_path: Path) -> None:
    assert apt_mirror(tmp_path) == DEFAULT_MIRROR
