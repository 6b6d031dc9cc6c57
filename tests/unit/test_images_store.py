"""The image store: blobs verified on write and read, names, lookup, diff ids, collection."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from dockyard.images import oci
from dockyard.images.digest import DigestMismatchError
from dockyard.images.store import (
    Image,
    ImageNotFoundError,
    ImageStore,
    ImageStoreError,
    LayerDescriptor,
)
from tests.unit.test_images_layers import file, symlink, tar_bytes

pytestmark = pytest.mark.unit


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "data")


def make_image(store: ImageStore, ref: str, *contents: bytes) -> Image:
    """Store an image with one gzip layer per content (a file named `f<i>`)."""
    layers = [
        store.put_layer(gzip.compress(tar_bytes(file(f"f{i}", c)), mtime=0))
        for i, c in enumerate(contents)
    ]
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]}}
    return store.create_image(ref, config, layers)


# -- blobs ---------------------------------------------------------------------------------


def test_put_blob_names_content_by_digest(store: ImageStore) -> None:
    digest = store.put_blob(b"hello")
    assert digest == sha(b"hello")
    assert store.blob_path(digest).read_bytes() == b"hello"
    assert store.put_blob(io.BytesIO(b"hello"), digest) == digest


def test_put_blob_refuses_wrong_digest_and_leaves_nothing(store: ImageStore) -> None:
    with pytest.raises(DigestMismatchError):
        store.put_blob(b"hello", sha(b"other"))
    assert not store.has_blob(sha(b"hello"))
    assert list(store.tmp_dir.iterdir()) == []


def test_open_blob_detects_corruption_at_eof_and_removes_blob(store: ImageStore) -> None:
    digest = store.put_blob(b"original content")
    store.blob_path(digest).write_bytes(b"tampered content")
    with store.open_blob(digest) as f, pytest.raises(DigestMismatchError, match="corrupt"):
        f.read()
    assert not store.has_blob(digest)


def test_open_blob_checks_size(store: ImageStore) -> None:
    digest = store.put_blob(b"12345")
    with store.open_blob(digest, size=4) as f, pytest.raises(DigestMismatchError, match="5 bytes"):
        f.read()


def test_layout_files_are_an_oci_image_layout(store: ImageStore) -> None:
    layout = json.loads((store.root / "oci-layout").read_text())
    assert layout == {"imageLayoutVersion": "1.0.0"}
    make_image(store, "app:1", b"a")
    index = json.loads((store.root / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["annotations"][oci.REF_NAME_ANNOTATION] == "docker.io/library/app:1"
    assert store.has_blob(entry["digest"])


# -- adding images -------------------------------------------------------------------------


def test_create_image_records_diff_ids(store: ImageStore) -> None:
    image = make_image(store, "app", b"one", b"two")
    assert [layer.diff_id for layer in image.layers] == image.config["rootfs"]["diff_ids"]
    plain = tar_bytes(file("f0", b"one"))
    assert image.layers[0].diff_id == sha(plain)
    assert image.reference == "docker.io/library/app:latest"
    assert image.config["config"]["Cmd"] == ["sh"]


def test_add_image_refuses_wrong_diff_ids(store: ImageStore) -> None:
    layer = store.put_layer(gzip.compress(tar_bytes(file("a"))))
    config = {"os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
    config_bytes = oci.canonical_json(config)
    manifest = oci.image_manifest(config_bytes, [layer.to_oci()])
    with pytest.raises(ImageStoreError, match="config says diff id"):
        store.add_image("bad", manifest, config_bytes)
    with pytest.raises(ImageNotFoundError):
        store.resolve("bad")


def test_add_image_refuses_config_digest_mismatch(store: ImageStore) -> None:
    config = oci.canonical_json({"rootfs": {"type": "layers", "diff_ids": []}})
    manifest = oci.image_manifest(config, [])
    with pytest.raises(ImageStoreError, match="manifest names config"):
        store.add_image("bad", manifest, config + b" ")


def test_add_image_refuses_missing_layer_blob(store: ImageStore) -> None:
    missing = LayerDescriptor(sha(b"nope"), sha(b"nope"), 4, oci.OCI_LAYER)
    with pytest.raises(ImageStoreError, match="missing"):
        store.create_image("bad", {"os": "linux"}, [missing])


def test_add_image_stores_given_layer_blobs(store: ImageStore) -> None:
    plain = tar_bytes(file("a", b"1"))
    config = oci.canonical_json({"os": "linux", "rootfs": {"type": "layers",
                                                           "diff_ids": [sha(plain)]}})
    layer = {"mediaType": oci.OCI_LAYER, "digest": sha(plain), "size": len(plain)}
    manifest = oci.image_manifest(config, [layer])
    image = store.add_image("given", manifest, config, [plain])
    assert store.has_blob(sha(plain)) and image.layers[0].diff_id == sha(plain)


# -- naming --------------------------------------------------------------------------------


def test_resolve_by_short_name_full_name_digest_and_id(store: ImageStore) -> None:
    image = make_image(store, "web:1", b"x")
    assert store.resolve("web:1").manifest_digest == image.manifest_digest
    assert store.resolve("docker.io/library/web:1").manifest_digest == image.manifest_digest
    assert store.resolve(f"web@{image.manifest_digest}").reference == image.reference
    assert store.resolve(image.config_digest[7:19]).reference == image.reference


def test_not_found_suggests_close_names(store: ImageStore) -> None:
    make_image(store, "my-nginx", b"x")
    with pytest.raises(ImageNotFoundError, match="did you mean my-nginx\\?"):
        store.resolve("my-ngnix")


def test_not_found_without_close_names_says_what_to_do(store: ImageStore) -> None:
    with pytest.raises(ImageNotFoundError, match="dockyard image ls"):
        store.resolve("nothing-like-it")


def test_tag_list_and_remove(store: ImageStore) -> None:
    image = make_image(store, "app:1", b"x")
    store.tag("app:1", "registry.local:5000/team/app:prod")
    names = [i.reference for i in store.list_images()]
    assert names == ["docker.io/library/app:1", "registry.local:5000/team/app:prod"]
    assert store.remove("app:1") == ["docker.io/library/app:1"]
    assert store.resolve("registry.local:5000/team/app:prod").id == image.id
    assert store.remove(image.id[7:19]) == ["registry.local:5000/team/app:prod"]
    assert store.list_images() == []


def test_retag_moves_the_name(store: ImageStore) -> None:
    make_image(store, "app", b"old")
    new = make_image(store, "app", b"new")
    assert store.resolve("app").manifest_digest == new.manifest_digest
    assert len(store.list_images()) == 1


def test_concurrent_tags_are_not_lost(store: ImageStore) -> None:
    make_image(store, "base", b"x")

    def tagger(n: int) -> None:
        other = ImageStore(store.data_dir)
        for i in range(10):
            other.tag("base", f"t{n}-{i}")

    threads = [threading.Thread(target=tagger, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list_images()) == 41


# -- unpacked layers and collection --------------------------------------------------------


def test_unpacked_layers_bottom_to_top(store: ImageStore) -> None:
    image = make_image(store, "app", b"bottom", b"top")
    paths = store.unpacked_layers(image)
    assert [p.name for p in paths] == [layer.diff_id[7:] for layer in image.layers]
    assert (paths[0] / "f0").read_bytes() == b"bottom"
    assert (paths[1] / "f1").read_bytes() == b"top"


def test_each_layer_unpacks_into_its_own_dir(store: ImageStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    lower = store.put_layer(tar_bytes(symlink("etc", str(outside))), oci.OCI_LAYER)
    upper = store.put_layer(tar_bytes(file("etc/evil", b"payload")), oci.OCI_LAYER)
    image = store.create_image("two", {"os": "linux"}, [lower, upper])
    low, up = store.unpacked_layers(image)
    assert (low / "etc").is_symlink()
    assert (up / "etc" / "evil").read_bytes() == b"payload"
    assert list(outside.iterdir()) == []


def test_corrupt_layer_blob_is_refused_and_leaves_no_layer(store: ImageStore) -> None:
    image = make_image(store, "app", b"content")
    blob = store.blob_path(image.layers[0].digest)
    blob.write_bytes(gzip.compress(tar_bytes(file("f0", b"evil")), mtime=0))
    with pytest.raises(DigestMismatchError):
        store.unpacked_layers(image)
    assert list(store.layers_dir.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []


def test_garbage_collect_keeps_named_and_removes_unnamed(store: ImageStore) -> None:
    keep = make_image(store, "keep", b"k")
    drop = make_image(store, "drop", b"d")
    store.unpacked_layers(keep)
    store.unpacked_layers(drop)
    store.remove("drop")
    result = store.garbage_collect(grace_seconds=0)
    assert drop.layers[0].digest in result.blobs and drop.manifest_digest in result.blobs
    assert result.layers == [drop.layers[0].diff_id]
    assert store.resolve("keep").id == keep.id
    assert store.layer_path(keep.layers[0].diff_id).is_dir()
    assert not store.layer_path(drop.layers[0].diff_id).exists()


def test_garbage_collect_grace_period_spares_fresh_blobs(store: ImageStore) -> None:
    digest = store.put_blob(b"being imported")
    assert store.garbage_collect().blobs == []
    assert store.has_blob(digest)


def test_garbage_collect_keeps_layers_asked_for(store: ImageStore) -> None:
    image = make_image(store, "app", b"x")
    [path] = store.unpacked_layers(image)
    store.remove("app")
    store.garbage_collect(keep_layers=[image.layers[0].diff_id], grace_seconds=0)
    assert path.is_dir()


def image_summary(image: Image) -> dict[str, Any]:
    return {"ref": image.reference, "layers": len(image.layers)}


def test_store_sees_other_instances_writes(store: ImageStore) -> None:
    other = ImageStore(store.data_dir)
    make_image(other, "from-cli", b"x")
    assert [image_summary(i) for i in store.list_images()] == [
        {"ref": "docker.io/library/from-cli:latest", "layers": 1}
    ]


def test_add_image_refuses_wrong_layer_size(store: ImageStore) -> None:
    layer = store.put_layer(gzip.compress(tar_bytes(file("a"))))
    wrong = LayerDescriptor(layer.digest, layer.diff_id, layer.size + 1, layer.media_type)
    with pytest.raises(ImageStoreError, match="manifest says"):
        store.create_image("bad", {"os": "linux"}, [wrong])


def test_add_image_refuses_non_linux_images(store: ImageStore) -> None:
    with pytest.raises(ImageStoreError, match="only linux images"):
        store.create_image("win", {"os": "windows"}, [])


def test_held_layers_survive_removal_until_released(store: ImageStore) -> None:
    image = make_image(store, "app", b"x")
    [path] = store.unpacked_layers(image)
    store.hold("container-1", image)
    store.remove("app")
    store.garbage_collect(grace_seconds=0)
    assert path.is_dir()
    store.release("container-1")
    store.release("container-1")
    assert store.garbage_collect(grace_seconds=0).layers == [image.layers[0].diff_id]
    assert not path.exists()


def test_invalid_holder_is_refused(store: ImageStore) -> None:
    image = make_image(store, "app", b"x")
    with pytest.raises(ImageStoreError, match="invalid holder"):
        store.hold("../escape", image)
