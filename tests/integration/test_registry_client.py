"""dockyard pull/push/login against a real registry (Debian's docker-registry), with skopeo
as a second client; refusals of hostile registry answers against a FakeRegistry."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dockyard.images import oci
from dockyard.images.archive import export_oci, import_oci
from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.credentials import CredentialStore
from dockyard.images.digest import digest_hex, sha256_digest
from dockyard.images.registry_client import RegistryClient, RegistryError, TransferEvent
from dockyard.images.store import Image, ImageNotFoundError, ImageStore
from tests.integration import image_fixtures, registry_fixtures
from tests.integration.registry_fixtures import PASSWORD, USER, RunningRegistry

pytestmark = pytest.mark.integration

image_store = image_fixtures.image_store
busybox_image = image_fixtures.busybox_image
docker_registry = registry_fixtures.docker_registry
auth_registry = registry_fixtures.auth_registry


def other_store(tmp_path: Path, name: str) -> ImageStore:
    return ImageStore(tmp_path / name)


def blobs(store: ImageStore) -> set[str]:
    return {p.name for p in store.blobs_dir.iterdir()}


async def test_push_then_pull_gives_the_same_image(
    image_store: ImageStore, busybox_image: Image, docker_registry: RunningRegistry,
    tmp_path: Path,
) -> None:  # fmt: skip
    name = f"{docker_registry.host}/team/busybox:1"
    image_store.tag("busybox", name)
    client = RegistryClient()
    events: list[TransferEvent] = []
    digest = await client.push(image_store, name, events.append)
    assert digest == busybox_image.manifest_digest
    assert {e.action for e in events} >= {"done"}

    target = other_store(tmp_path, "pulled")
    pulled = await client.pull(target, name)
    assert pulled.manifest_digest == busybox_image.manifest_digest
    assert pulled.config == busybox_image.config
    layer_dir = target.unpacked_layers(pulled)[0]
    assert (layer_dir / "bin" / "busybox").is_file()

    again: list[TransferEvent] = []
    await client.push(image_store, name, again.append)
    assert {e.action for e in again} == {"exists"}


async def test_cross_repository_mount_and_chunked_upload(
    image_store: ImageStore, busybox_image: Image, docker_registry: RunningRegistry,
) -> None:  # fmt: skip
    first, second = (f"{docker_registry.host}/a/one:1", f"{docker_registry.host}/b/two:1")
    image_store.tag("busybox", first)
    image_store.tag("busybox", second)
    chunked = RegistryClient(chunk_size=64 << 10)  # the ~1 MB layer goes in 16+ PATCHes
    events: list[TransferEvent] = []
    await chunked.push(image_store, first, events.append)
    assert any(e.action == "push" and e.done < e.total for e in events)
    events = []
    await chunked.push(image_store, second, events.append)
    assert {e.action for e in events} == {"mounted"}
    inspect = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{second}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(inspect.stdout)["Digest"] == busybox_image.manifest_digest


async def test_skopeo_reads_what_we_push_and_we_pull_what_skopeo_pushes(
    image_store: ImageStore, busybox_image: Image, docker_registry: RunningRegistry,
    tmp_path: Path,
) -> None:  # fmt: skip
    ours = f"{docker_registry.host}/ours/busybox:1"
    image_store.tag("busybox", ours)
    await RegistryClient().push(image_store, ours)
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{ours}",
                    f"oci:{layout}:copied"], check=True, capture_output=True)  # fmt: skip
    imported = import_oci(other_store(tmp_path, "viaskopeo"), layout, "copied:1")
    assert imported[0].config_digest == busybox_image.config_digest

    exported = tmp_path / "export"
    export_oci(image_store, ["busybox"], exported)
    theirs = f"{docker_registry.host}/theirs/busybox:2"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false",
                    f"oci:{exported}:docker.io/library/busybox:latest", f"docker://{theirs}"],
                   check=True, capture_output=True)  # fmt: skip
    pulled = await RegistryClient().pull(other_store(tmp_path, "fromskopeo"), theirs)
    assert pulled.config_digest == busybox_image.config_digest


async def test_manifest_list_picks_linux_of_this_machine(
    image_store: ImageStore, busybox_image: Image, docker_registry: RunningRegistry,
    tmp_path: Path,
) -> None:  # fmt: skip
    repo = f"{docker_registry.host}/multi/busybox"
    image_store.tag("busybox", f"{repo}:single")
    await RegistryClient().push(image_store, f"{repo}:single")
    arch = oci.host_architecture()
    index = {
        "schemaVersion": 2, "mediaType": oci.OCI_INDEX,
        "manifests": [
            {"mediaType": oci.OCI_MANIFEST, "digest": busybox_image.manifest_digest,
             "size": image_store.blob_path(busybox_image.manifest_digest).stat().st_size,
             "platform": {"os": "linux", "architecture": other}}
            for other in ("s390x", arch)
        ],
    }  # fmt: skip
    request = urllib.request.Request(
        f"http://{docker_registry.host}/v2/multi/busybox/manifests/multi",
        data=oci.canonical_json(index), method="PUT",
        headers={"Content-Type": oci.OCI_INDEX},
    )  # fmt: skip
    urllib.request.urlopen(request).close()
    pulled = await RegistryClient().pull(other_store(tmp_path, "multi"), f"{repo}:multi")
    assert pulled.manifest_digest == busybox_image.manifest_digest


async def test_interrupted_download_resumes_from_the_partial_file(
    image_store: ImageStore, busybox_image: Image, docker_registry: RunningRegistry,
    tmp_path: Path,
) -> None:  # fmt: skip
    name = f"{docker_registry.host}/resume/busybox:1"
    image_store.tag("busybox", name)
    await RegistryClient().push(image_store, name)
    layer = busybox_image.layers[0]
    content = image_store.blob_path(layer.digest).read_bytes()

    target = other_store(tmp_path, "resume")
    partial = target.tmp_dir / f"pull-{digest_hex(layer.digest)}.partial"
    partial.write_bytes(b"X" * 1000)  # a wrong prefix: resuming from it must be caught
    with pytest.raises(RegistryError, match="hashing to"):
        await RegistryClient().pull(target, name)
    assert not partial.exists()
    with pytest.raises(ImageNotFoundError):
        target.resolve(name)

    partial.write_bytes(content[: len(content) // 2])  # a true prefix: resumed with Range
    pulled = await RegistryClient().pull(target, name)
    assert pulled.layers[0].digest == layer.digest
    assert not partial.exists()


async def test_login_and_basic_auth(
    image_store: ImageStore, busybox_image: Image, auth_registry: RunningRegistry,
    tmp_path: Path,
) -> None:  # fmt: skip
    name = f"{auth_registry.host}/private/busybox:1"
    image_store.tag("busybox", name)
    credentials = CredentialStore(tmp_path / "docker-config")
    client = RegistryClient(credentials)
    with pytest.raises(RegistryError, match="dockyard login"):
        await client.push(image_store, name)
    with pytest.raises(RegistryError):
        await client.login(auth_registry.host, USER, "wrong")
    assert credentials.get(auth_registry.host) is None
    await client.login(auth_registry.host, USER, PASSWORD)
    saved = json.loads((tmp_path / "docker-config" / "config.json").read_text())
    assert auth_registry.host in saved["auths"]
    await client.push(image_store, name)
    pulled = await client.pull(other_store(tmp_path, "authpull"), name)
    assert pulled.manifest_digest == busybox_image.manifest_digest


# -- hostile registries -------------------------------------------------------------------


class FakeRegistry:
    """A loopback registry whose answers a test chooses (to prove refusals)."""

    def __init__(self) -> None:
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.redirect_blobs_to = ""
        self.require_basic = False
        self.app = web.Application()
        self.app.router.add_get("/v2/", self.ping)
        self.app.router.add_get("/v2/{name:.+}/manifests/{ref}", self.manifest)
        self.app.router.add_get("/v2/{name:.+}/blobs/{digest}", self.blob)
        self.host = ""

    def _authorized(self, request: web.Request) -> bool:
        return not self.require_basic or request.headers.get("Authorization", "").startswith(
            "Basic ")

    async def ping(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        return web.json_response({})

    async def manifest(self, request: web.Request) -> web.Response:
        data, media_type = self.manifests[request.match_info["ref"]]
        return web.Response(body=data, content_type=media_type.split(";")[0])

    async def blob(self, request: web.Request) -> web.Response:
        if self.redirect_blobs_to:
            raise web.HTTPFound(f"http://{self.redirect_blobs_to}{request.path}")
        return web.Response(body=self.blobs[request.match_info["digest"]])

    def serve_image(self, store: ImageStore, image: Image, tag: str) -> None:
        manifest = store.read_blob(image.manifest_digest)
        self.manifests[tag] = (manifest, oci.OCI_MANIFEST)
        self.manifests[image.manifest_digest] = self.manifests[tag]
        for digest in [image.config_digest, *(layer.digest for layer in image.layers)]:
            self.blobs[digest] = store.blob_path(digest).read_bytes()


@pytest.fixture
async def fake_registry() -> AsyncIterator[FakeRegistry]:
    fake = FakeRegistry()
    runner = web.AppRunner(fake.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.host = f"127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def manifest_with(image: Image, store: ImageStore, **changes: Any) -> bytes:
    doc = json.loads(store.read_blob(image.manifest_digest))
    doc.update(changes)
    return oci.canonical_json(doc)


async def test_manifest_whose_digest_does_not_match_is_refused(
    image_store: ImageStore, busybox_image: Image, fake_registry: FakeRegistry, tmp_path: Path,
) -> None:  # fmt: skip
    fake_registry.serve_image(image_store, busybox_image, "1")
    forged = manifest_with(busybox_image, image_store, annotations={"x": "forged"})
    fake_registry.manifests[busybox_image.manifest_digest] = (forged, oci.OCI_MANIFEST)
    target = other_store(tmp_path, "t")
    before = blobs(target)
    with pytest.raises(RegistryError, match=f"hashes to {sha256_digest(forged)}"):
        await RegistryClient().pull(
            target, f"{fake_registry.host}/x/busybox@{busybox_image.manifest_digest}")
    assert blobs(target) == before and target.list_images() == []


async def test_manifest_claiming_index_and_image_is_refused(
    image_store: ImageStore, busybox_image: Image, fake_registry: FakeRegistry, tmp_path: Path,
) -> None:  # fmt: skip
    fake_registry.serve_image(image_store, busybox_image, "1")
    both = manifest_with(busybox_image, image_store, manifests=[])
    fake_registry.manifests["1"] = (both, oci.OCI_MANIFEST)
    target = other_store(tmp_path, "t")
    with pytest.raises(RegistryError, match="both an index and an image"):
        await RegistryClient().pull(target, f"{fake_registry.host}/x/busybox:1")
    assert blobs(target) == set() and target.list_images() == []


async def test_layer_larger_than_declared_is_refused_and_nothing_is_stored(
    image_store: ImageStore, busybox_image: Image, fake_registry: FakeRegistry, tmp_path: Path,
) -> None:  # fmt: skip
    fake_registry.serve_image(image_store, busybox_image, "1")
    layer = busybox_image.layers[0].digest
    fake_registry.blobs[layer] += b"trailing bytes"
    target = other_store(tmp_path, "t")
    with pytest.raises(RegistryError, match="larger than the .* bytes its descriptor declares"):
        await RegistryClient().pull(target, f"{fake_registry.host}/x/busybox:1")
    assert blobs(target) == set() and target.list_images() == []
    assert list(target.tmp_dir.glob("pull-*")) == []


async def test_redirect_to_another_host_with_credentials_is_refused(
    image_store: ImageStore, busybox_image: Image, fake_registry: FakeRegistry, tmp_path: Path,
) -> None:  # fmt: skip
    fake_registry.serve_image(image_store, busybox_image, "1")
    fake_registry.require_basic = True
    port = fake_registry.host.rsplit(":", 1)[1]
    fake_registry.redirect_blobs_to = f"localhost:{port}"  # same server, another host name
    credentials = CredentialStore(tmp_path / "cfg")
    credentials.store(fake_registry.host, "bob", "secret")
    target = other_store(tmp_path, "t")
    with pytest.raises(RegistryError, match="redirected to another host .*localhost.* refused"):
        await RegistryClient(credentials).pull(target, f"{fake_registry.host}/x/busybox:1")
    assert blobs(target) == set() and target.list_images() == []


def test_busybox_fixture_is_deterministic(image_store: ImageStore, tmp_path: Path) -> None:
    again = bootstrap_busybox(other_store(tmp_path, "again"))
    assert again.manifest_digest == bootstrap_busybox(image_store).manifest_digest


async def test_build_pulls_a_missing_base_image_from_its_registry(
    image_store: ImageStore, busybox_image: Image, docker_registry: RunningRegistry,
    tmp_path: Path,
) -> None:  # fmt: skip
    from dockyard.images.builder import Builder, BuildOptions

    base = f"{docker_registry.host}/base/busybox:1"
    image_store.tag("busybox", base)
    await RegistryClient().push(image_store, base)
    builder_store = other_store(tmp_path, "builder")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base}\nENV FROM_REGISTRY=1\n")
    options = BuildOptions(context, tags=["child:1"], runc_root=tmp_path / "runc",
                           pull=RegistryClient().pull)  # fmt: skip
    image = await Builder(builder_store, options).build()
    assert image.layers == busybox_image.layers
    assert builder_store.resolve(base).manifest_digest == busybox_image.manifest_digest
