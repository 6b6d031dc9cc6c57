"""debian:bookworm from Debian's mirror with debootstrap (slow: minutes on a cold cache).

The rootfs tarball is cached in DOCKYARD_TEST_CACHE (default /var/tmp/dockyard-test-cache),
kept between runs so only the first run on a machine pays for debootstrap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.images.bootstrap import BootstrapError, bootstrap_debian
from dockyard.images.store import ImageStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap missing"),
]

CACHE = Path(os.environ.get("DOCKYARD_TEST_CACHE", "/var/tmp/dockyard-test-cache"))


def test_bootstrap_debian_bookworm(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "data")
    lines: list[str] = []
    image = bootstrap_debian(store, "bookworm", progress=lines.append, cache_dir=CACHE)
    assert image.reference == "docker.io/library/debian:bookworm"
    assert image.config["config"]["Cmd"] == ["bash"]
    assert lines and lines[-1].startswith("made debian:bookworm")
    [root] = store.unpacked_layers(image)
    out = subprocess.run(
        ["chroot", str(root), "/bin/bash", "-c", "cat /etc/debian_version; ls /dev | wc -l"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()
    assert out[0].startswith("12.")
    assert out[1] == "0"  # device nodes are left to the runtime
    assert not list(store.tmp_dir.iterdir())


def test_second_bootstrap_uses_the_cache(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "data")
    first = bootstrap_debian(store, "bookworm", cache_dir=CACHE)
    lines: list[str] = []
    again = bootstrap_debian(ImageStore(tmp_path / "again"), "bookworm", progress=lines.append,
                             cache_dir=CACHE)
    assert lines[0].startswith("using cached root filesystem")
    assert again.manifest_digest == first.manifest_digest


def test_invalid_suite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BootstrapError, match="invalid Debian suite"):
        bootstrap_debian(ImageStore(tmp_path), "../etc", cache_dir=tmp_path / "cache")
