"""Layer extraction that needs root: whiteouts, opaque dirs, devices, owners, setuid bits."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.images.layers import OPAQUE_XATTR, LayerError, UnsafeLayerError
from tests.unit.test_images_layers import Entry, directory, extract, file, symlink, tar_bytes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and owners need root"),
]


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "rootfs"


def is_whiteout(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_whiteout_becomes_overlay_char_device(dest: Path) -> None:
    extract(tar_bytes(directory("etc"), file("etc/.wh.motd", b"")), dest)
    assert is_whiteout(dest / "etc" / "motd")
    assert not (dest / "etc" / ".wh.motd").exists()


def test_opaque_whiteout_sets_xattr(dest: Path) -> None:
    extract(tar_bytes(directory("var"), file("var/.wh..wh..opq", b""), file("var/new")), dest)
    assert os.getxattr(dest / "var", OPAQUE_XATTR) == b"y"
    assert (dest / "var" / "new").exists()
    assert not (dest / "var" / ".wh..wh..opq").exists()


@pytest.mark.parametrize(
    "name",
    [".wh.", "d/.wh..wh.plnk", "d/.wh..", ".wh..wh..opq"],
    ids=["empty-name", "reserved-aufs", "dotdot-target", "opaque-at-root"],
)
def test_invalid_whiteouts_are_refused(dest: Path, name: str) -> None:
    with pytest.raises(LayerError, match="invalid whiteout"):
        extract(tar_bytes(directory("d"), file(name, b"")), dest)
    assert not dest.exists()


def test_whiteout_that_is_a_directory_is_refused(dest: Path) -> None:
    with pytest.raises(LayerError, match="invalid whiteout"):
        extract(tar_bytes(directory(".wh.gone")), dest)


def test_whiteout_used_as_a_parent_directory_is_refused(dest: Path) -> None:
    with pytest.raises(UnsafeLayerError, match="invalid whiteout"):
        extract(tar_bytes(file(".wh.dir/inner")), dest)


@pytest.mark.parametrize("whiteout_first", [True, False])
def test_whiteout_clashing_with_same_layer_entry_is_refused(
    dest: Path, whiteout_first: bool
) -> None:
    entries = [file(".wh.app", b""), file("app", b"x")]
    if not whiteout_first:
        entries.reverse()
    with pytest.raises(LayerError, match="invalid whiteout"):
        extract(tar_bytes(*entries), dest)


def test_whiteout_through_planted_symlink_stays_inside(dest: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    extract(tar_bytes(symlink("link", str(outside)), file("link/.wh.victim", b"")), dest)
    assert list(outside.iterdir()) == []
    assert is_whiteout(dest / str(outside).lstrip("/") / "victim")


def test_device_nodes_are_skipped_and_reported(dest: Path) -> None:
    null = Entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
    disk = Entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660)
    result = extract(tar_bytes(directory("dev"), null, disk, file("ok")), dest)
    assert list((dest / "dev").iterdir()) == []
    assert (dest / "ok").exists()
    skipped = result.skipped  # type: ignore[attr-defined]
    assert any(s.startswith("dev/null (device node") for s in skipped)
    assert any(s.startswith("dev/sda (device node") for s in skipped)


def test_setuid_bits_and_owners_are_kept(dest: Path) -> None:
    layer = tar_bytes(
        directory("bin"),
        file("bin/su", b"\x7fELF", mode=0o4755, uid=0, gid=0),
        file("bin/wall", b"\x7fELF", mode=0o2755, uid=0, gid=5),
        file("home-file", b"mine", mode=0o600, uid=1000, gid=1000),
        Entry("tmpdir", tarfile.DIRTYPE, mode=0o1777),
    )
    extract(layer, dest)
    su = (dest / "bin" / "su").stat()
    assert stat.S_IMODE(su.st_mode) == 0o4755
    assert stat.S_IMODE((dest / "bin" / "wall").stat().st_mode) == 0o2755
    assert (dest / "bin" / "wall").stat().st_gid == 5
    owned = (dest / "home-file").stat()
    assert (owned.st_uid, owned.st_gid) == (1000, 1000)
    assert stat.S_IMODE((dest / "tmpdir").stat().st_mode) == 0o1777


def test_setuid_file_through_symlink_never_lands_outside(dest: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    layer = tar_bytes(symlink("usr", str(outside)), file("usr/suid", b"x", mode=0o4755))
    extract(layer, dest)
    assert list(outside.iterdir()) == []
    inside = dest / str(outside).lstrip("/") / "suid"
    assert stat.S_IMODE(inside.stat().st_mode) == 0o4755


def test_symlink_owner_is_kept_without_following(dest: Path, tmp_path: Path) -> None:
    target = tmp_path / "host-file"
    target.write_text("x")
    link = Entry("l", tarfile.SYMTYPE, link=str(target), mode=0o777, uid=1234, gid=1234)
    extract(tar_bytes(link), dest)
    assert (dest / "l").lstat().st_uid == 1234
    assert target.stat().st_uid == 0


def test_trusted_xattrs_from_the_layer_are_dropped(dest: Path) -> None:
    forged = file("d", b"x", pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc"})
    result = extract(tar_bytes(forged), dest)
    with pytest.raises(OSError):
        os.getxattr(dest / "d", "trusted.overlay.redirect")
    assert any("trusted.overlay.redirect" in s for s in result.skipped)  # type: ignore[attr-defined]
