"""layerdiff: an overlayfs upper dir becomes a reproducible OCI layer that extracts back to
the same tree (whiteouts, opaque dirs, hard links, file capabilities)."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import pytest

from dockyard.images.layerdiff import write_layer
from dockyard.images.layers import extract_layer

pytestmark = pytest.mark.integration

# struct vfs_cap_data, revision 2 with the effective bit: permitted = cap_net_raw (13)
NET_RAW = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


def make_upper(root: Path) -> Path:
    upper = root / "upper"
    (upper / "opaque").mkdir(parents=True)
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    (upper / "opaque" / "kept").write_text("kept\n")
    os.mknod(upper / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (upper / "bin").mkdir()
    (upper / "bin" / "ping").write_bytes(b"\x7fELF pretend")
    os.chmod(upper / "bin" / "ping", 0o755)
    os.setxattr(upper / "bin" / "ping", "security.capability", NET_RAW)
    os.link(upper / "bin" / "ping", upper / "bin" / "ping6")
    os.symlink("ping", upper / "bin" / "p")
    return upper


def test_layer_round_trips_and_is_reproducible(tmp_path: Path) -> None:
    upper = make_upper(tmp_path)
    first = write_layer(upper, tmp_path / "one.tgz", mtime=0)
    os.utime(upper / "opaque" / "kept", (999, 999))
    second = write_layer(upper, tmp_path / "two.tgz", mtime=0)
    assert first is not None and second is not None
    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)

    dest = tmp_path / "extracted"
    with open(tmp_path / "one.tgz", "rb") as f:
        result = extract_layer(f, dest, digest=first.digest, diff_id=first.diff_id)
    assert result.entries == first.entries
    assert os.getxattr(dest / "opaque", "trusted.overlay.opaque") == b"y"
    gone = os.lstat(dest / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(dest / "bin" / "ping", "security.capability") == NET_RAW
    assert os.stat(dest / "bin" / "ping").st_ino == os.stat(dest / "bin" / "ping6").st_ino
    assert os.readlink(dest / "bin" / "p") == "ping"
    assert os.stat(dest / "opaque" / "kept").st_mtime == 0


def test_an_empty_upper_dir_gives_no_layer(tmp_path: Path) -> None:
    (tmp_path / "upper").mkdir()
    assert write_layer(tmp_path / "upper", tmp_path / "none.tgz") is None
    assert not (tmp_path / "none.tgz").exists()
