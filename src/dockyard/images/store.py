"""The content-addressed image store: an OCI image layout plus unpacked layers.

Layout under DATA_DIR/images/:

    oci-layout, index.json          the OCI image layout (skopeo and podman read it as is);
                                    each manifest in index.json carries the annotation
                                    org.opencontainers.image.ref.name = normalised reference
    blobs/sha256/<hex>              manifests, configs and layer blobs, named by digest
    layers/sha256/<diff-id hex>/    each layer unpacked once (overlayfs form), shared by
                                    every container of every image that uses it
    layerdb/sha256/<blob hex>       the verified diff id of a compressed layer blob
    tmp/                            staging: everything is written here, then renamed
    holds/<holder>                  diff ids a container uses (kept by garbage_collect)
    index.lock, locks/              fcntl locks

Invariants: a blob's name is the sha256 of its content (checked when written and again
whenever it is read: a corrupt blob is removed when found); blobs, index.json and unpacked
layers appear only by rename(2) from tmp/, so no reader ever sees a half-written one, even
after a crash; every read-modify-write of index.json holds an exclusive flock, so two
processes never lose each other's tags; a config's rootfs.diff_ids equal its layers'
uncompressed digests (checked on import). Reads go to disk every time, so a server on the
same data dir sees images added by the CLI at once.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from dockyard.images import oci
from dockyard.images.digest import (
    CHUNK,
    DigestMismatchError,
    VerifyingReader,
    digest_hex,
    sha256_digest,
)
from dockyard.images.layers import DEFAULT_LIMITS, ExtractLimits, extract_layer, measure_layer
from dockyard.images.reference import Reference, is_sha256_digest, parse_reference

log = logging.getLogger(__name__)

MAX_JSON_BLOB = 8 << 20
GC_GRACE_SECONDS = 600.0
SMALL_BLOB_CACHE = 4096
_HEX_PREFIX = re.compile(r"(sha256:)?[0-9a-f]{4,64}")

BlobSource = bytes | IO[bytes] | Path


class ImageStoreError(ValueError):
    """An image or blob the store refuses: malformed, inconsistent or incomplete."""


class ImageNotFoundError(LookupError):
    """No image in the store answers to a reference."""


@dataclass(frozen=True)
class LayerDescriptor:
    """One layer of an image: its blob (digest, size, media type) and its diff id."""

    digest: str
    diff_id: str
    size: int
    media_type: str = oci.OCI_LAYER_GZIP

    def to_oci(self) -> dict[str, Any]:
        """Return the OCI descriptor of this layer's blob."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass
class Image:
    """An image in the store, as named by one reference."""

    reference: str
    manifest_digest: str
    config_digest: str
    config: dict[str, Any]
    layers: list[LayerDescriptor]
    created: str
    size: int
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        """Return the image id (Docker's word): the config digest."""
        return self.config_digest

    def familiar(self) -> str:
        """Return the short name shown to users (`busybox:latest`)."""
        return parse_reference(self.reference).familiar()

    @property
    def run_config(self) -> dict[str, Any]:
        """Return the config's `config` section (Env, Cmd, Entrypoint, WorkingDir, ...)."""
        section = self.config.get("config") or {}
        return dict(section)


@dataclass
class GCResult:
    """What garbage_collect removed."""

    blobs: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    freed_bytes: int = 0


class ImageStore:
    """An OCI image layout with unpacked layers under DATA_DIR/images."""

    def __init__(self, data_dir: Path, *, limits: ExtractLimits = DEFAULT_LIMITS) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "images"
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.layers_dir = self.root / "layers" / "sha256"
        self.layerdb_dir = self.root / "layerdb" / "sha256"
        self.tmp_dir = self.root / "tmp"
        self.locks_dir = self.root / "locks"
        self.holds_dir = self.root / "holds"
        self.limits = limits
        # Verified small blobs (manifests, configs) by digest: content-addressed, so never stale.
        self._small_blobs: dict[str, bytes] = {}
        for d in (self.blobs_dir, self.layers_dir, self.layerdb_dir, self.tmp_dir,
                  self.locks_dir, self.holds_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._init_layout()

    # -- layout and index ---------------------------------------------------------------

    def _init_layout(self) -> None:
        with self._index_lock():
            if not (self.root / "oci-layout").exists():
                layout = {"imageLayoutVersion": oci.OCI_LAYOUT_VERSION}
                self._write_atomic(self.root / "oci-layout", oci.canonical_json(layout))
            if not (self.root / "index.json").exists():
                self._write_index({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": []})

    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        with self._flock(self.root / "index.lock"):
            yield

    @contextlib.contextmanager
    def _flock(self, path: Path) -> Iterator[None]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_index(self) -> dict[str, Any]:
        with open(self.root / "index.json", "rb") as f:
            index: dict[str, Any] = json.load(f)
        index.setdefault("manifests", [])
        return index

    def _write_index(self, index: dict[str, Any]) -> None:
        self._write_atomic(self.root / "index.json", oci.canonical_json(index))

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix=path.name + ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    # -- blobs ----------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Return where the blob named `digest` lives (it may not exist)."""
        return self.blobs_dir / digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        """Return True if the blob named `digest` is in the store."""
        return self.blob_path(digest).is_file()

    def put_blob(self, data: BlobSource, expected_digest: str | None = None) -> str:
        """Store a blob (bytes, a binary stream or a file path); return its digest."""
        if expected_digest is not None and self.has_blob(expected_digest):
            os.utime(self.blob_path(expected_digest))
            return expected_digest
        if isinstance(data, Path):
            with open(data, "rb") as f:
                return self._put_stream(f, expected_digest)
        if isinstance(data, bytes | bytearray | memoryview):
            return self._put_stream(io.BytesIO(bytes(data)), expected_digest)
        return self._put_stream(data, expected_digest)

    def _put_stream(self, stream: IO[bytes], expected: str | None) -> str:
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="blob.")
        try:
            hasher = hashlib.sha256()
            with os.fdopen(fd, "wb") as f:
                while chunk := stream.read(CHUNK):
                    hasher.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            digest = "sha256:" + hasher.hexdigest()
            if expected is not None and digest != expected:
                raise DigestMismatchError(f"blob expected to be {expected} hashes to {digest}")
            os.chmod(tmp, 0o644)
            os.rename(tmp, self.blob_path(digest))
            return digest
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def open_blob(self, digest: str, size: int | None = None) -> BinaryIO:
        """Open a blob for reading; reading to its end raises DigestMismatchError if corrupt."""
        path = self.blob_path(digest)
        try:
            f = open(path, "rb")  # noqa: SIM115 - owned by the returned reader
        except FileNotFoundError:
            raise ImageStoreError(f"blob {digest} is not in the store") from None

        def remove_corrupt() -> None:
            log.warning("removing corrupt blob %s", digest)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

        raw = VerifyingReader(f, digest, size=size, on_mismatch=remove_corrupt)
        return io.BufferedReader(raw, buffer_size=CHUNK)

    def read_blob(self, digest: str, limit: int = MAX_JSON_BLOB) -> bytes:
        """Return a (small) blob's verified content."""
        with self.open_blob(digest) as f:
            data = f.read(limit + 1)
            if len(data) > limit:
                raise ImageStoreError(f"blob {digest} is larger than {limit} bytes")
            f.read()  # reach EOF so the digest is checked
        return data

    def _read_json_blob(self, digest: str) -> dict[str, Any]:
        data = self._small_blobs.get(digest)
        if data is None:
            data = self.read_blob(digest)
            if len(self._small_blobs) >= SMALL_BLOB_CACHE:
                self._small_blobs.clear()
            self._small_blobs[digest] = data
        try:
            value = json.loads(data)
        except json.JSONDecodeError as e:
            raise ImageStoreError(f"blob {digest} is not valid JSON: {e}") from e
        if not isinstance(value, dict):
            raise ImageStoreError(f"blob {digest} is not a JSON object")
        return value

    # -- adding images --------------------------------------------------------------------

    def add_image(
        self,
        ref: str,
        manifest: dict[str, Any] | bytes,
        config: dict[str, Any] | bytes,
        layers: Iterable[BlobSource] = (),
    ) -> Image:
        """Store an image: its layer blobs (manifest order; may be omitted if already stored),
        config and manifest, checked against each other; then name it `ref`."""
        reference = parse_reference(ref)
        manifest_bytes = manifest if isinstance(manifest, bytes) else oci.canonical_json(manifest)
        config_bytes = config if isinstance(config, bytes) else oci.canonical_json(config)
        manifest_doc = _load_json(manifest_bytes, "manifest")
        config_doc = _load_json(config_bytes, "image config")
        layer_descs = _check_manifest(manifest_doc, config_bytes)
        if config_doc.get("os", "linux") != "linux":
            raise ImageStoreError(f"image is for {config_doc['os']}; only linux images run here")
        for desc, blob in zip(layer_descs, layers, strict=False):
            self.put_blob(blob, desc["digest"])
        descriptors = self._check_layers(layer_descs, config_doc)
        config_digest = self.put_blob(config_bytes, manifest_doc["config"]["digest"])
        manifest_digest = self.put_blob(manifest_bytes)
        self._set_name(reference, manifest_digest, manifest_doc, len(manifest_bytes), config_doc)
        return self._image(str(reference), manifest_digest, manifest_doc, config_doc,
                           config_digest, descriptors)

    def create_image(
        self, ref: str, config: dict[str, Any], layers: list[LayerDescriptor]
    ) -> Image:
        """Write the manifest for a config and already-stored layers, and name it `ref`."""
        config = dict(config)
        rootfs = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
        config["rootfs"] = rootfs
        config_bytes = oci.canonical_json(config)
        manifest = oci.image_manifest(config_bytes, [layer.to_oci() for layer in layers])
        return self.add_image(ref, manifest, config_bytes)

    def put_layer(self, data: BlobSource, media_type: str = oci.OCI_LAYER_GZIP) -> LayerDescriptor:
        """Store a layer blob, compute and record its diff id; return its descriptor."""
        digest = self.put_blob(data)
        diff_id = self.diff_id(digest)
        return LayerDescriptor(digest, diff_id, self.blob_path(digest).stat().st_size, media_type)

    def diff_id(self, digest: str) -> str:
        """Return the diff id of a stored layer blob, decompressing it once to find out."""
        return self.layer_info(digest)[0]

    def layer_info(self, digest: str) -> tuple[str, int]:
        """Return (diff id, uncompressed size) of a stored layer blob, measured once."""
        record = self.layerdb_dir / digest_hex(digest)
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            info = json.loads(record.read_text())
            return str(info["diff_id"]), int(info["size"])
        with self.open_blob(digest) as blob:
            measured = measure_layer(blob, self.limits)
        info = {"diff_id": measured.diff_id, "size": measured.size}
        self._write_atomic(record, oci.canonical_json(info))
        return measured.diff_id, measured.size

    def _check_layers(
        self, layer_descs: list[dict[str, Any]], config: dict[str, Any]
    ) -> list[LayerDescriptor]:
        diff_ids = _config_diff_ids(config)
        if len(diff_ids) != len(layer_descs):
            raise ImageStoreError(
                f"image config lists {len(diff_ids)} diff ids for {len(layer_descs)} layers"
            )
        result = []
        for desc, expected in zip(layer_descs, diff_ids, strict=True):
            digest = desc["digest"]
            if not self.has_blob(digest):
                raise ImageStoreError(f"layer blob {digest} is missing; add it first")
            stored = self.blob_path(digest).stat().st_size
            if stored != int(desc.get("size", -1)):
                raise ImageStoreError(
                    f"layer {digest}: manifest says {desc.get('size')} bytes, blob has {stored}"
                )
            actual = self.diff_id(digest)
            if actual != expected:
                raise ImageStoreError(
                    f"layer {digest}: config says diff id {expected}, "
                    f"the uncompressed layer is {actual}"
                )
            result.append(LayerDescriptor(digest, actual, int(desc["size"]), desc["mediaType"]))
        return result

    def _set_name(
        self,
        reference: Reference,
        manifest_digest: str,
        manifest: dict[str, Any],
        manifest_size: int,
        config: dict[str, Any],
    ) -> None:
        entry = {
            "mediaType": manifest.get("mediaType", oci.OCI_MANIFEST),
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {oci.REF_NAME_ANNOTATION: str(reference)},
            "platform": {
                "architecture": config.get("architecture", oci.host_architecture()),
                "os": config.get("os", "linux"),
            },
        }
        with self._index_lock():
            index = self._read_index()
            index["manifests"] = [
                m for m in index["manifests"] if _ref_name(m) != str(reference)
            ] + [entry]
            self._write_index(index)

    # -- naming and lookup ----------------------------------------------------------------

    def resolve(self, ref: str) -> Image:
        """Return the image named `ref` (name, name@digest or id prefix)."""
        entry = self._find_entry(ref)
        return self._load_entry(entry)

    def _find_entry(self, ref: str) -> dict[str, Any]:
        entries = self._read_index()["manifests"]
        by_id = _HEX_PREFIX.fullmatch(ref) is not None
        try:
            reference: Reference | None = parse_reference(ref)
        except ValueError:
            if not by_id:
                raise
            reference = None
        if reference is not None:
            for entry in entries:
                if _matches(entry, reference):
                    return entry
        if by_id:
            found = self._find_by_id(entries, ref)
            if found is not None:
                return found
        raise ImageNotFoundError(self._not_found_message(ref, entries))

    def _find_by_id(self, entries: list[dict[str, Any]], ref: str) -> dict[str, Any] | None:
        prefix = ref if ref.startswith("sha256:") else "sha256:" + ref
        hits: dict[str, dict[str, Any]] = {}
        for entry in entries:
            if entry["digest"].startswith(prefix):
                hits.setdefault(entry["digest"], entry)
                continue
            with contextlib.suppress(ImageStoreError, DigestMismatchError, KeyError):
                manifest = self._read_json_blob(entry["digest"])
                if manifest["config"]["digest"].startswith(prefix):
                    hits.setdefault(entry["digest"], entry)
        if len(hits) > 1:
            raise ImageNotFoundError(f"image id {ref} is ambiguous: give more digits")
        return next(iter(hits.values()), None)

    def _not_found_message(self, ref: str, entries: list[dict[str, Any]]) -> str:
        names: set[str] = set()
        for entry in entries:
            with contextlib.suppress(ValueError):
                familiar = parse_reference(_ref_name(entry)).familiar()
                # Suggest in the form the user typed: no `:latest` if they gave no tag.
                if ":" not in ref and familiar.endswith(":latest"):
                    familiar = familiar[: -len(":latest")]
                names.add(familiar)
        close = difflib.get_close_matches(ref, sorted(names), n=3, cutoff=0.6)
        if close:
            return f"image {ref} not found — did you mean {' or '.join(close)}?"
        return f"image {ref} not found; `dockyard image ls` lists the images in this store"

    def list_images(self) -> list[Image]:
        """Return every named image, sorted by reference."""
        images = []
        for entry in self._read_index()["manifests"]:
            try:
                images.append(self._load_entry(entry))
            except (ImageStoreError, DigestMismatchError) as e:
                log.warning("skipping image %s: %s", _ref_name(entry) or entry.get("digest"), e)
        return sorted(images, key=lambda image: image.reference)

    def tag(self, source: str, target: str) -> Image:
        """Give the image named `source` the additional name `target`."""
        image = self.resolve(source)
        reference = parse_reference(target)
        if reference.digest:
            raise ImageStoreError(f"cannot tag with a digest reference: {target}")
        self._set_name(
            reference, image.manifest_digest, image.manifest,
            self.blob_path(image.manifest_digest).stat().st_size, image.config,
        )
        return self.resolve(str(reference))

    def remove(self, ref: str) -> list[str]:
        """Remove the name `ref` (or, for an id or digest, every name of that image).

        Returns the references removed. Blobs and layers stay until garbage_collect.
        """
        entry = self._find_entry(ref)
        by_name = _ref_name(entry) == str(_safe_parse(ref))
        with self._index_lock():
            index = self._read_index()
            if by_name:
                doomed = [m for m in index["manifests"] if _ref_name(m) == _ref_name(entry)]
            else:
                doomed = [m for m in index["manifests"] if m["digest"] == entry["digest"]]
            index["manifests"] = [m for m in index["manifests"] if m not in doomed]
            self._write_index(index)
        return [_ref_name(m) for m in doomed]

    def _load_entry(self, entry: dict[str, Any]) -> Image:
        if not _ref_name(entry):
            raise ImageStoreError(f"manifest {entry.get('digest')} in index.json has no name")
        manifest_digest = entry["digest"]
        manifest = self._read_json_blob(manifest_digest)
        config_digest = manifest["config"]["digest"]
        config = self._read_json_blob(config_digest)
        diff_ids = _config_diff_ids(config)
        layers = [
            LayerDescriptor(d["digest"], diff_id, int(d["size"]), d["mediaType"])
            for d, diff_id in zip(manifest.get("layers", []), diff_ids, strict=False)
        ]
        return self._image(_ref_name(entry), manifest_digest, manifest, config, config_digest,
                           layers)

    @staticmethod
    def _image(
        reference: str,
        manifest_digest: str,
        manifest: dict[str, Any],
        config: dict[str, Any],
        config_digest: str,
        layers: list[LayerDescriptor],
    ) -> Image:
        size = int(manifest["config"]["size"]) + sum(layer.size for layer in layers)
        return Image(
            reference=reference,
            manifest_digest=manifest_digest,
            config_digest=config_digest,
            config=config,
            layers=layers,
            created=str(config.get("created", "")),
            size=size,
            manifest=manifest,
        )

    # -- unpacked layers ------------------------------------------------------------------

    def layer_path(self, diff_id: str) -> Path:
        """Return where the layer with `diff_id` is (or will be) unpacked."""
        return self.layers_dir / digest_hex(diff_id)

    def unpacked_layers(self, image: Image) -> list[Path]:
        """Return the image's unpacked layer dirs, bottom to top, unpacking on first use."""
        return [self.unpack_layer(layer) for layer in image.layers]

    def unpack_layer(self, layer: LayerDescriptor) -> Path:
        """Unpack one layer (once: later calls and other processes reuse it); return its dir."""
        final = self.layer_path(layer.diff_id)
        if final.is_dir():
            return final
        with self._flock(self.locks_dir / f"{digest_hex(layer.diff_id)}.lock"):
            if final.is_dir():
                return final
            staging = Path(tempfile.mkdtemp(dir=self.tmp_dir, prefix="layer."))
            try:
                os.chmod(staging, 0o755)
                with self.open_blob(layer.digest, layer.size) as blob:
                    extract_layer(
                        blob, staging, digest=layer.digest, diff_id=layer.diff_id,
                        limits=self.limits,
                    )
                os.rename(staging, final)
            except OSError as e:
                shutil.rmtree(staging, ignore_errors=True)
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not final.is_dir():
                    raise
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return final

    # -- holds and garbage collection -----------------------------------------------------

    def hold(self, holder: str, image: Image) -> None:
        """Record that `holder` (a container id) uses the image's unpacked layers.

        garbage_collect keeps held layers even after the image is removed, until release.
        """
        record = self._hold_path(holder)
        self._write_atomic(record, oci.canonical_json([layer.diff_id for layer in image.layers]))

    def release(self, holder: str) -> None:
        """Forget `holder`'s hold on layers (idempotent)."""
        self._hold_path(holder).unlink(missing_ok=True)

    def _hold_path(self, holder: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", holder):
            raise ImageStoreError(f"invalid holder name {holder!r}: use letters, digits, _.-")
        return self.holds_dir / holder

    def _held_layers(self) -> set[str]:
        held: set[str] = set()
        for path in self.holds_dir.iterdir():
            with contextlib.suppress(OSError, ValueError):
                held.update(digest_hex(d) for d in json.loads(path.read_text()))
        return held


    def garbage_collect(
        self, keep_layers: Iterable[str] = (), grace_seconds: float = GC_GRACE_SECONDS
    ) -> GCResult:
        """Remove blobs and unpacked layers no named image uses.

        Kept: anything younger than `grace_seconds` (an import may be under way), layers in
        `keep_layers` (diff ids), layers under a hold (see hold) and layers that a mounted
        overlayfs names by absolute path as a lower dir.
        """
        result = GCResult()
        cutoff = time.time() - grace_seconds
        with self._index_lock():
            live_blobs, live_layers = self._live_content()
            live_layers.update(digest_hex(d) for d in keep_layers)
            live_layers.update(self._held_layers())
            mounted = _mounted_lower_dirs()
            for path in self.blobs_dir.iterdir():
                if path.name not in live_blobs and _older(path, cutoff):
                    result.freed_bytes += path.stat().st_size
                    path.unlink()
                    (self.layerdb_dir / path.name).unlink(missing_ok=True)
                    result.blobs.append("sha256:" + path.name)
            for path in self.layers_dir.iterdir():
                if path.name in live_layers or str(path.resolve()) in mounted:
                    continue
                if _older(path, cutoff):
                    self._remove_tree(path)
                    (self.locks_dir / f"{path.name}.lock").unlink(missing_ok=True)
                    result.layers.append("sha256:" + path.name)
            for path in self.tmp_dir.iterdir():
                if _older(path, cutoff):
                    self._remove_tree(path)
        return result

    def _live_content(self) -> tuple[set[str], set[str]]:
        blobs: set[str] = set()
        layers: set[str] = set()
        for entry in self._read_index()["manifests"]:
            blobs.add(digest_hex(entry["digest"]))
            try:
                image = self._load_entry(entry)
            except (ImageStoreError, DigestMismatchError, KeyError) as e:
                log.warning("image %s is damaged: %s", _ref_name(entry), e)
                continue
            blobs.add(digest_hex(image.config_digest))
            for layer in image.layers:
                blobs.add(digest_hex(layer.digest))
                layers.add(digest_hex(layer.diff_id))
        return blobs, layers

    def _remove_tree(self, path: Path) -> None:
        # Rename first so the tree disappears atomically, then delete it at leisure.
        holder = Path(tempfile.mkdtemp(dir=self.tmp_dir, prefix="gc."))
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, holder / "x")
        shutil.rmtree(holder, ignore_errors=True)


def _load_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except json.JSONDecodeError as e:
        raise ImageStoreError(f"{what} is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise ImageStoreError(f"{what} is not a JSON object")
    return value


def _check_manifest(manifest: dict[str, Any], config_bytes: bytes) -> list[dict[str, Any]]:
    media_type = manifest.get("mediaType", oci.OCI_MANIFEST)
    if media_type not in oci.MANIFEST_TYPES or manifest.get("schemaVersion") != 2:
        raise ImageStoreError(
            f"unsupported manifest (mediaType {media_type!r}, schemaVersion "
            f"{manifest.get('schemaVersion')!r}): want an OCI or Docker v2 image manifest"
        )
    config_desc = manifest.get("config") or {}
    if config_desc.get("digest") != sha256_digest(config_bytes):
        raise ImageStoreError(
            f"manifest names config {config_desc.get('digest')} but the config hashes to "
            f"{sha256_digest(config_bytes)}"
        )
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise ImageStoreError("manifest has no layers list")
    for desc in layers:
        if desc.get("mediaType") not in oci.LAYER_TYPES:
            raise ImageStoreError(f"unsupported layer media type {desc.get('mediaType')!r}")
        if not is_sha256_digest(str(desc.get("digest"))):
            raise ImageStoreError(f"layer digest {desc.get('digest')!r} is not sha256:<hex>")
    return layers


def _config_diff_ids(config: dict[str, Any]) -> list[str]:
    rootfs = config.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids")
    if rootfs.get("type") != "layers" or not isinstance(diff_ids, list):
        raise ImageStoreError("image config has no rootfs of type 'layers' with diff_ids")
    return [str(d) for d in diff_ids]


def _ref_name(entry: dict[str, Any]) -> str:
    return str((entry.get("annotations") or {}).get(oci.REF_NAME_ANNOTATION, ""))


def _safe_parse(ref: str) -> str:
    try:
        return str(parse_reference(ref))
    except ValueError:
        return ""


def _matches(entry: dict[str, Any], reference: Reference) -> bool:
    name = _ref_name(entry)
    if reference.digest:
        if entry["digest"] != reference.digest:
            return False
        with contextlib.suppress(ValueError):
            return parse_reference(name).name == reference.name
        return False
    return name == str(reference)


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.lstat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _mounted_lower_dirs() -> set[str]:
    """Return the real paths of every overlayfs lower dir mounted on this machine."""
    dirs: set[str] = set()
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return dirs
    for line in lines:
        _, _, tail = line.partition(" - ")
        fields = tail.split(" ")
        if len(fields) < 3 or fields[0] != "overlay":
            continue
        for option in fields[2].split(","):
            if option.startswith("lowerdir="):
                for path in option[len("lowerdir=") :].split(":"):
                    if path:
                        dirs.add(os.path.realpath(_unescape_mount_path(path)))
    return dirs


def _unescape_mount_path(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)
