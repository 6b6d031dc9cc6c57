"""Layer extraction attacks that need no root: every one stays inside dest or fails cleanly."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from dockyard.images.layers import (
    DecompressionBombError,
    ExtractLimits,
    LayerDigestError,
    LayerError,
    UnsafeLayerError,
    extract_layer,
    measure_layer,
)

pytestmark = pytest.mark.unit


@dataclass
class Entry:
    """One tar member for a test layer."""

    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] | None = None


def file(name: str, data: bytes = b"x", **kw: object) -> Entry:
    return Entry(name, tarfile.REGTYPE, data, **kw)  # type: ignore[arg-type]


def directory(name: str, mode: int = 0o755) -> Entry:
    return Entry(name, tarfile.DIRTYPE, mode=mode)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.SYMTYPE, link=target, mode=0o777)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.LNKTYPE, link=target)


def tar_bytes(*entries: Entry) -> bytes:
    """Return an uncompressed tar holding `entries` in order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.mode, info.uid, info.gid = e.kind, e.mode, e.uid, e.gid
            info.linkname = e.link
            info.devmajor, info.devminor = e.devmajor, e.devminor
            info.size = len(e.data) if e.kind == tarfile.REGTYPE else 0
            info.pax_headers = dict(e.pax or {})
            tar.addfile(info, io.BytesIO(e.data) if e.kind == tarfile.REGTYPE else None)
    return out.getvalue()


def extract(data: bytes, dest: Path, **kw: object) -> object:
    return extract_layer(io.BytesIO(data), dest, **kw)  # type: ignore[arg-type]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory outside dest that an attack would like to write into."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret").write_text("host secret")
    return path


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "rootfs"


def host_untouched(outside: Path) -> bool:
    return sorted(p.name for p in outside.iterdir()) == ["secret"] and (
        (outside / "secret").read_text() == "host secret"
    )


# -- paths -------------------------------------------------------------------------------


def test_dotdot_entry_is_refused_and_dest_removed(dest: Path, outside: Path) -> None:
    with pytest.raises(UnsafeLayerError, match=r"'\.\.' component"):
        extract(tar_bytes(file("ok"), file("../outside/evil")), dest)
    assert not dest.exists()
    assert host_untouched(outside)


def test_nested_dotdot_entry_is_refused(dest: Path, outside: Path) -> None:
    with pytest.raises(UnsafeLayerError):
        extract(tar_bytes(directory("a"), file("a/../../outside/evil")), dest)
    assert host_untouched(outside)


def test_absolute_entry_lands_inside_dest(dest: Path, outside: Path) -> None:
    evil = str(outside / "evil")
    extract(tar_bytes(file(evil, b"payload")), dest)
    assert host_untouched(outside)
    assert (dest / evil.lstrip("/")).read_bytes() == b"payload"


def test_symlink_to_outside_then_write_through_stays_inside(dest: Path, outside: Path) -> None:
    layer = tar_bytes(symlink("link", str(outside)), file("link/evil", b"payload"))
    extract(layer, dest)
    assert host_untouched(outside)
    assert os.readlink(dest / "link") == str(outside)
    assert (dest / str(outside).lstrip("/") / "evil").read_bytes() == b"payload"


def test_relative_symlink_climbing_out_is_clamped_at_root(dest: Path, outside: Path) -> None:
    layer = tar_bytes(symlink("up", "../../../../../../../.."), file("up/evil", b"payload"))
    extract(layer, dest)
    assert (dest / "evil").read_bytes() == b"payload"
    assert not (dest.parent / "evil").exists()
    assert host_untouched(outside)


def test_symlink_planted_by_earlier_layer_is_not_written_through(
    dest: Path, outside: Path
) -> None:
    extract(tar_bytes(symlink("etc", str(outside))), dest)
    extract(tar_bytes(file("etc/evil", b"payload")), dest)
    assert host_untouched(outside)
    assert (dest / str(outside).lstrip("/") / "evil").read_bytes() == b"payload"


def test_existing_symlink_is_replaced_not_followed(dest: Path, outside: Path) -> None:
    layer = tar_bytes(
        symlink("victim", str(outside / "secret")), file("victim", b"new content")
    )
    extract(layer, dest)
    assert host_untouched(outside)
    assert not (dest / "victim").is_symlink()
    assert (dest / "victim").read_bytes() == b"new content"


def test_symlink_loop_is_refused(dest: Path) -> None:
    layer = tar_bytes(symlink("a", "b"), symlink("b", "a"), file("a/x"))
    with pytest.raises(UnsafeLayerError, match="too many levels of symbolic links"):
        extract(layer, dest)
    assert not dest.exists()


def test_hardlink_with_dotdot_is_refused(dest: Path, outside: Path) -> None:
    with pytest.raises(UnsafeLayerError):
        extract(tar_bytes(hardlink("hl", "../outside/secret")), dest)
    assert (outside / "secret").stat().st_nlink == 1


def test_hardlink_to_absolute_host_path_is_refused(dest: Path, outside: Path) -> None:
    with pytest.raises(LayerError, match="target not in this layer"):
        extract(tar_bytes(hardlink("hl", str(outside / "secret"))), dest)
    assert (outside / "secret").stat().st_nlink == 1
    assert not dest.exists()


def test_hardlink_through_planted_symlink_is_refused(dest: Path, outside: Path) -> None:
    layer = tar_bytes(symlink("link", str(outside)), hardlink("hl", "link/secret"))
    with pytest.raises(LayerError, match="target not in this layer"):
        extract(layer, dest)
    assert (outside / "secret").stat().st_nlink == 1


def test_hardlink_inside_layer_works(dest: Path) -> None:
    extract(tar_bytes(file("a", b"same"), hardlink("b", "a")), dest)
    assert (dest / "a").stat().st_ino == (dest / "b").stat().st_ino


def test_file_under_a_regular_file_is_refused(dest: Path) -> None:
    with pytest.raises(LayerError, match="is not a directory"):
        extract(tar_bytes(file("f"), file("f/g")), dest)


# -- sizes and integrity -----------------------------------------------------------------


def zeros_layer(size: int) -> bytes:
    return tar_bytes(file("zeros", bytes(size)))


def test_gzip_bomb_is_refused_by_ratio(dest: Path) -> None:
    # 16 MiB of zeros gzip to ~16 KiB: a ratio near 1000, over the cap of 50.
    blob = gzip.compress(zeros_layer(16 << 20))
    limits = ExtractLimits(max_ratio=50, ratio_floor=1 << 20)
    with pytest.raises(DecompressionBombError, match="decompression bomb"):
        extract(blob, dest, limits=limits)
    assert not dest.exists()


def test_absolute_size_cap(dest: Path) -> None:
    with pytest.raises(DecompressionBombError, match="cap of 1048576 bytes"):
        extract(zeros_layer(2 << 20), dest, limits=ExtractLimits(max_bytes=1 << 20))
    assert not dest.exists()


def test_entry_count_cap(dest: Path) -> None:
    layer = tar_bytes(*(file(f"f{i}") for i in range(20)))
    with pytest.raises(DecompressionBombError, match="more than 10 entries"):
        extract(layer, dest, limits=ExtractLimits(max_entries=10))


def test_truncated_gzip_blob_is_refused_and_removed(dest: Path) -> None:
    blob = gzip.compress(tar_bytes(file("a", os.urandom(100_000))))
    with pytest.raises(LayerError, match="truncated"):
        extract(blob[: len(blob) // 2], dest)
    assert not dest.exists()


def test_truncated_plain_tar_is_refused(dest: Path) -> None:
    layer = tar_bytes(file("a", os.urandom(100_000)))
    with pytest.raises(LayerError, match="truncated"):
        extract(layer[:50_000], dest)
    assert not dest.exists()


def test_digest_mismatch_is_refused_and_removed(dest: Path) -> None:
    blob = gzip.compress(tar_bytes(file("a")))
    wrong = "sha256:" + "0" * 64
    with pytest.raises(LayerDigestError, match="is corrupt"):
        extract(blob, dest, digest=wrong)
    assert not dest.exists()


def test_diff_id_mismatch_is_refused(dest: Path) -> None:
    blob = gzip.compress(tar_bytes(file("a")))
    with pytest.raises(LayerDigestError, match="diff id mismatch"):
        extract(blob, dest, diff_id="sha256:" + "1" * 64)
    assert not dest.exists()


def test_digests_are_computed_while_extracting(dest: Path) -> None:
    plain = tar_bytes(directory("d"), file("d/a", b"hello"))
    blob = gzip.compress(plain)
    result = extract(
        blob, dest,
        digest="sha256:" + hashlib.sha256(blob).hexdigest(),
        diff_id="sha256:" + hashlib.sha256(plain).hexdigest(),
    )
    assert (dest / "d" / "a").read_bytes() == b"hello"
    assert result.size == len(plain)  # type: ignore[attr-defined]


def test_zstd_layer_extracts(dest: Path) -> None:
    plain = tar_bytes(file("z", b"zstd content"))
    blob = zstandard.ZstdCompressor().compress(plain)
    result = extract(blob, dest, diff_id="sha256:" + hashlib.sha256(plain).hexdigest())
    assert (dest / "z").read_bytes() == b"zstd content"
    assert result.compressed_size == len(blob)  # type: ignore[attr-defined]


def test_measure_layer_matches_extraction(dest: Path) -> None:
    plain = tar_bytes(file("a", b"1"), file("b", b"2"))
    measured = measure_layer(io.BytesIO(gzip.compress(plain)))
    assert measured.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert measured.size == len(plain)


def test_not_a_tar_is_refused(dest: Path) -> None:
    with pytest.raises(LayerError):
        extract(b"this is not a tar archive at all" * 40, dest)
    assert not dest.exists()


def test_directory_replaced_by_symlink_redirects_later_entries(dest: Path) -> None:
    layer = tar_bytes(
        directory("a"), file("a/x", b"1"), directory("b"),
        symlink("a", "b"), file("a/y", b"2"),
    )
    extract(layer, dest)
    assert (dest / "a").is_symlink()
    assert (dest / "b" / "y").read_bytes() == b"2"
    assert not (dest / "b" / "x").exists()


def test_failing_system_call_names_the_entry(dest: Path) -> None:
    too_long = "x" * 300  # NAME_MAX is 255
    with pytest.raises(LayerError, match="layer entry 'xxx.*File name too long"):
        extract(tar_bytes(file(too_long)), dest)
    assert not dest.exists()
