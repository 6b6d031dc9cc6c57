"""Moving images in and out of the store: OCI image layouts and `docker save` archives.

Formats:
- OCI image layout (a directory, or a tar of one, "oci-archive"): oci-layout, index.json,
  blobs/sha256/<hex>. Exported manifests carry org.opencontainers.image.ref.name = the
  normalised reference, so `skopeo inspect oci:DIR:<reference>` and `podman load` find them.
- `docker save` archive: manifest.json ([{Config, RepoTags, Layers}]), the config JSON,
  one uncompressed `<diff id hex>/layer.tar` per layer, and `repositories`. Loadable by
  `podman load` and `docker load`.

Invariants: every blob read from an archive is verified against its digest as it is stored
(ImageStore.put_blob), and every image goes through ImageStore.add_image, which checks
config digest and diff ids; nothing from an archive is extracted to disk on import (members
are read by name from the tar), so a hostile archive cannot write outside the store.
Exports are written to a temp file or dir beside the target and renamed into place, so a
failed export leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from dockyard.images import oci
from dockyard.images.digest import CHUNK, digest_hex
from dockyard.images.layers import decompressed
from dockyard.images.reference import parse_reference
from dockyard.images.store import Image, ImageStore, ImageStoreError

MAX_JSON = 8 << 20


class ArchiveError(ValueError):
    """An archive or layout that cannot be imported."""


# -- reading sources ------------------------------------------------------------------------


class _Source(Protocol):
    def exists(self, name: str) -> bool: ...

    def open(self, name: str) -> IO[bytes]: ...


class _DirSource:
    def __init__(self, root: Path) -> None:
        self.root = root

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def open(self, name: str) -> IO[bytes]:
        try:
            return open(self.root / name, "rb")
        except FileNotFoundError:
            raise ArchiveError(f"{self.root}: {name} is missing") from None


class _TarSource:
    def __init__(self, tar: tarfile.TarFile, label: str) -> None:
        self.tar = tar
        self.label = label
        self.members = {_clean(m.name): m for m in tar.getmembers() if m.isfile() or m.islnk()}

    def exists(self, name: str) -> bool:
        return _clean(name) in self.members

    def open(self, name: str) -> IO[bytes]:
        member = self.members.get(_clean(name))
        data = self.tar.extractfile(member) if member is not None else None
        if data is None:
            raise ArchiveError(f"{self.label}: {name} is missing")
        return data


def _clean(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _read_json(source: _Source, name: str) -> Any:
    with source.open(name) as f:
        data = f.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise ArchiveError(f"{name} is larger than {MAX_JSON} bytes")
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise ArchiveError(f"{name} is not valid JSON: {e}") from e


@contextlib.contextmanager
def _open_source(path: Path) -> Iterator[_Source]:
    if path.is_dir():
        yield _DirSource(path)
        return
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by the `with` below
    except (tarfile.TarError, OSError) as e:
        raise ArchiveError(f"{path} is not a directory or a tar archive: {e}") from e
    with tar:
        yield _TarSource(tar, str(path))


# -- import ---------------------------------------------------------------------------------


def load_archive(store: ImageStore, path: Path, name: str | None = None) -> list[Image]:
    """Import a `docker save` archive or an OCI layout (dir or tar); return the images."""
    with _open_source(path) as source:
        if source.exists("index.json") and source.exists("oci-layout"):
            return _import_oci(store, source, name)
        if source.exists("manifest.json"):
            return _import_docker(store, source, name)
    raise ArchiveError(
        f"{path}: neither an OCI image layout (oci-layout, index.json) nor a docker save "
        "archive (manifest.json)"
    )


def import_oci(store: ImageStore, path: Path, name: str | None = None) -> list[Image]:
    """Import every image of an OCI image layout (a directory or a tar of one)."""
    with _open_source(path) as source:
        if not source.exists("index.json"):
            raise ArchiveError(f"{path}: no index.json; not an OCI image layout")
        return _import_oci(store, source, name)


def _import_oci(store: ImageStore, source: _Source, name: str | None) -> list[Image]:
    index = _read_json(source, "index.json")
    entries = index.get("manifests") or []
    if not entries:
        raise ArchiveError("OCI layout index.json lists no manifests")
    if name is not None and len(entries) > 1:
        raise ArchiveError("a name can only be given when the layout holds one image")
    images = []
    for entry in entries:
        manifest_digest = _platform_manifest(source, entry)
        ref = _entry_reference(entry, name)
        images.append(_import_manifest(store, source, manifest_digest, ref))
    return images


def _platform_manifest(source: _Source, entry: dict[str, Any]) -> str:
    """Return the manifest digest for this machine, descending into an image index."""
    if entry.get("mediaType") not in oci.INDEX_TYPES:
        return str(entry["digest"])
    nested = _read_json(source, _blob_name(entry["digest"]))
    arch = oci.host_architecture()
    for candidate in nested.get("manifests") or []:
        platform = candidate.get("platform") or {}
        if platform.get("os", "linux") == "linux" and platform.get("architecture") == arch:
            return _platform_manifest(source, candidate)
    raise ArchiveError(f"image index {entry['digest']} has no manifest for linux/{arch}")


def _entry_reference(entry: dict[str, Any], name: str | None) -> str:
    annotations = entry.get("annotations") or {}
    ref_name = annotations.get(oci.REF_NAME_ANNOTATION, "")
    full = annotations.get(oci.CONTAINERD_NAME_ANNOTATION, "")
    if name is not None:
        if ref_name and ":" not in name and "/" not in ref_name and ":" not in ref_name:
            return f"{name}:{ref_name}"
        return name
    if full:
        return str(full)
    # OCI's convention is a bare tag in ref.name; ours (and containerd's) a full reference.
    if ref_name and ("/" in ref_name or ":" in ref_name):
        return str(ref_name)
    raise ArchiveError(
        f"manifest {entry.get('digest')} has no full image name (ref.name {ref_name!r}); "
        "give one with --name"
    )


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest_hex(digest)}"


def _import_manifest(store: ImageStore, source: _Source, digest: str, ref: str) -> Image:
    with source.open(_blob_name(digest)) as f:
        manifest_bytes = f.read(MAX_JSON)
    manifest = json.loads(manifest_bytes)
    config_digest = manifest["config"]["digest"]
    with source.open(_blob_name(config_digest)) as f:
        config_bytes = f.read(MAX_JSON)
    for layer in manifest.get("layers") or []:
        if not store.has_blob(layer["digest"]):
            with source.open(_blob_name(layer["digest"])) as f:
                store.put_blob(f, layer["digest"])
    return store.add_image(ref, manifest_bytes, config_bytes)


def _import_docker(store: ImageStore, source: _Source, name: str | None) -> list[Image]:
    entries = _read_json(source, "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise ArchiveError("manifest.json lists no images")
    if name is not None and len(entries) > 1:
        raise ArchiveError("a name can only be given when the archive holds one image")
    images: list[Image] = []
    for entry in entries:
        tags = [name] if name is not None else list(entry.get("RepoTags") or [])
        if not tags:
            raise ArchiveError(
                f"image {entry.get('Config')} in the archive has no name; give one with --name"
            )
        with source.open(entry["Config"]) as f:
            config_bytes = f.read(MAX_JSON)
        layers = [_import_docker_layer(store, source, layer) for layer in entry["Layers"]]
        manifest = oci.image_manifest(config_bytes, layers)
        image = store.add_image(tags[0], manifest, config_bytes)
        images.append(image)
        images.extend(store.tag(image.reference, tag) for tag in tags[1:])
    return images


def _import_docker_layer(store: ImageStore, source: _Source, name: str) -> dict[str, Any]:
    with source.open(name) as f:
        head = f.read(4)
        digest = store.put_blob(io.BufferedReader(_Chain(head, f)))
    media_type = oci.OCI_LAYER
    if head.startswith(b"\x1f\x8b"):
        media_type = oci.OCI_LAYER_GZIP
    elif head.startswith(b"\x28\xb5\x2f\xfd"):
        media_type = oci.OCI_LAYER_ZSTD
    size = store.blob_path(digest).stat().st_size
    return {"mediaType": media_type, "digest": digest, "size": size}


class _Chain(io.RawIOBase):
    """`head` then the rest of `tail`, as one readable stream."""

    def __init__(self, head: bytes, tail: IO[bytes]) -> None:
        super().__init__()
        self._head = head
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._head[: len(buffer)] if self._head else self._tail.read(len(buffer))
        self._head = self._head[len(data) :] if self._head else b""
        buffer[: len(data)] = data
        return len(data)


# -- export ---------------------------------------------------------------------------------


def export_oci(store: ImageStore, refs: list[str], dest: Path) -> list[Image]:
    """Write images as an OCI image layout: a directory, or a tar if `dest` ends in .tar."""
    images = [store.resolve(ref) for ref in refs]
    if dest.suffix == ".tar":
        with _atomic_file(dest) as out, tarfile.open(fileobj=out, mode="w") as tar:
            _write_oci(store, images, _TarSink(tar))
    else:
        if dest.exists():
            raise ArchiveError(f"{dest} exists; export into a new directory")
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
        try:
            _write_oci(store, images, _DirSink(staging))
            os.chmod(staging, 0o755)
            os.rename(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return images


def _write_oci(store: ImageStore, images: list[Image], sink: _Sink) -> None:
    written: set[str] = set()
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": []}
    for image in images:
        digests = [image.manifest_digest, image.config_digest]
        digests += [layer.digest for layer in image.layers]
        for digest in digests:
            if digest not in written:
                written.add(digest)
                sink.add_blob(store, digest)
        index["manifests"].append({
            "mediaType": image.manifest.get("mediaType", oci.OCI_MANIFEST),
            "digest": image.manifest_digest,
            "size": store.blob_path(image.manifest_digest).stat().st_size,
            "annotations": {oci.REF_NAME_ANNOTATION: image.reference},
        })
    sink.add_bytes("oci-layout", oci.canonical_json({"imageLayoutVersion": "1.0.0"}))
    sink.add_bytes("index.json", oci.canonical_json(index))


class _Sink(Protocol):
    def add_blob(self, store: ImageStore, digest: str) -> None: ...

    def add_bytes(self, name: str, data: bytes) -> None: ...


class _DirSink:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)

    def add_blob(self, store: ImageStore, digest: str) -> None:
        target = self.root / _blob_name(digest)
        with store.open_blob(digest) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)

    def add_bytes(self, name: str, data: bytes) -> None:
        (self.root / name).write_bytes(data)


class _TarSink:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        for d in ("blobs", "blobs/sha256"):
            self.tar.addfile(_tar_info(d, 0, tarfile.DIRTYPE))

    def add_blob(self, store: ImageStore, digest: str) -> None:
        size = store.blob_path(digest).stat().st_size
        with store.open_blob(digest) as src:
            self.tar.addfile(_tar_info(_blob_name(digest), size), src)
            src.read()  # reach EOF so the digest is verified

    def add_bytes(self, name: str, data: bytes) -> None:
        self.tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))


def _tar_info(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size if kind == tarfile.REGTYPE else 0
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 0
    return info


@contextlib.contextmanager
def _atomic_file(dest: Path) -> Iterator[IO[bytes]]:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_docker_archive(store: ImageStore, refs: list[str], dest: Path) -> list[Image]:
    """Write images in the `docker save` format (uncompressed layer tars) to `dest`."""
    images = [store.resolve(ref) for ref in refs]
    groups: dict[str, list[Image]] = {}
    for image in images:
        groups.setdefault(image.manifest_digest, []).append(image)
    with _atomic_file(dest) as out, tarfile.open(fileobj=out, mode="w") as tar:
        manifest: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        written: set[str] = set()
        for group in groups.values():
            manifest.append(_save_image(store, tar, group, written, repositories))
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        _add_bytes(tar, "repositories", json.dumps(repositories).encode())
    return images


def _save_image(
    store: ImageStore,
    tar: tarfile.TarFile,
    group: list[Image],
    written: set[str],
    repositories: dict[str, dict[str, str]],
) -> dict[str, Any]:
    image = group[0]
    config_name = f"{digest_hex(image.config_digest)}.json"
    if config_name not in written:
        written.add(config_name)
        _add_bytes(tar, config_name, store.read_blob(image.config_digest))
    layer_names = []
    for layer in image.layers:
        name = f"{digest_hex(layer.diff_id)}/layer.tar"
        layer_names.append(name)
        if name not in written:
            written.add(name)
            _add_uncompressed_layer(store, tar, layer.digest, name)
    tags = []
    for member in group:
        ref = parse_reference(member.reference)
        ref = ref.with_tag(ref.tag or "latest")
        # Fully qualified: podman reads a short "busybox" as localhost/busybox.
        tags.append(str(ref))
        repo, _, tag = ref.familiar().rpartition(":")
        top = digest_hex(image.layers[-1].diff_id) if image.layers else ""
        repositories.setdefault(repo, {})[tag] = top
    return {"Config": config_name, "RepoTags": tags, "Layers": layer_names}


def _add_uncompressed_layer(
    store: ImageStore, tar: tarfile.TarFile, digest: str, name: str
) -> None:
    _, size = store.layer_info(digest)
    tar.addfile(_tar_info(name.rsplit("/", 1)[0], 0, tarfile.DIRTYPE))
    with store.open_blob(digest) as blob:
        with decompressed(blob) as plain:
            # Buffered so every read is full-length: tarfile takes a short read for EOF.
            tar.addfile(_tar_info(name, size), io.BufferedReader(_Readable(plain), CHUNK))
            if plain.read(1):
                raise ImageStoreError(f"layer {digest} is longer than its recorded size")
        blob.read()  # reach EOF so the blob digest is verified


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))


class _Readable(io.RawIOBase):
    """Adapts a plain `read` source to a file object for tarfile."""

    def __init__(self, source: Any) -> None:
        super().__init__()
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
