"""The server's /v2/ registry: our client and skopeo pull from it and push to it, with
token auth (bearer, basic with the token as password, and the realm flow)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from dockyard.images.credentials import CredentialStore
from dockyard.images.registry_client import RegistryClient, RegistryError
from dockyard.images.registry_server import add_registry_routes
from dockyard.images.store import Image, ImageStore
from tests.integration import image_fixtures

pytestmark = pytest.mark.integration

image_store = image_fixtures.image_store
busybox_image = image_fixtures.busybox_image

ADMIN, NODE = "admin-token", "node-token"


def authorize(token: str, action: str) -> str:
    """Admins push and pull, nodes pull; anything else must authenticate."""
    if token == ADMIN:
        return "ok"
    if token == NODE:
        return "ok" if action == "pull" else "forbidden"
    return "unauthenticated"


@pytest.fixture
async def served(image_store: ImageStore, tmp_path: Path) -> AsyncIterator[tuple[str,
                                                                                ImageStore]]:
    store = ImageStore(tmp_path / "server")
    app = web.Application()
    add_registry_routes(app, store, authorize)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}", store
    finally:
        await runner.cleanup()


async def skopeo(*args: str) -> str:
    """Run skopeo without blocking the loop that serves the registry."""
    proc = await asyncio.create_subprocess_exec(
        "skopeo", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def client_for(tmp_path: Path, host: str, token: str, **kwargs: int) -> RegistryClient:
    credentials = CredentialStore(tmp_path / f"cfg-{token}")
    credentials.store(host, "user", token)
    return RegistryClient(credentials, **kwargs)


async def test_push_and_pull_through_the_server(
    busybox_image: Image, image_store: ImageStore, served: tuple[str, ImageStore],
    tmp_path: Path,
) -> None:  # fmt: skip
    host, server_store = served
    name = f"{host}/my-busybox:1"
    image_store.tag("busybox", name)
    with pytest.raises(RegistryError, match="dockyard login|403|may not push|answered 40"):
        await client_for(tmp_path, host, NODE).push(image_store, name)
    digest = await client_for(tmp_path, host, ADMIN, chunk_size=100_000).push(image_store, name)
    assert digest == busybox_image.manifest_digest
    stored = server_store.resolve("my-busybox:1")  # repository my-busybox = library/my-busybox
    assert stored.manifest_digest == digest

    node_store = ImageStore(tmp_path / "node")
    pulled = await client_for(tmp_path, host, NODE).pull(node_store, f"{host}/library/my-busybox:1")
    assert pulled.manifest_digest == digest

    with pytest.raises(RegistryError):
        await RegistryClient().pull(ImageStore(tmp_path / "anon"), name)


async def test_skopeo_copies_from_and_to_the_server(
    busybox_image: Image, image_store: ImageStore, served: tuple[str, ImageStore],
    tmp_path: Path,
) -> None:  # fmt: skip
    host, server_store = served
    image_store.tag("busybox", f"{host}/tools/busybox:1")
    await client_for(tmp_path, host, ADMIN).push(image_store, f"{host}/tools/busybox:1")
    layout = tmp_path / "layout"
    await skopeo("copy", "--src-tls-verify=false", f"--src-creds=x:{NODE}",
                 f"docker://{host}/tools/busybox:1", f"oci:{layout}:copy")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == busybox_image.manifest_digest

    await skopeo("copy", "--dest-tls-verify=false", f"--dest-creds=x:{ADMIN}",
                 f"oci:{layout}:copy", f"docker://{host}/tools/again:2")
    assert server_store.resolve("tools/again:2").config_digest == busybox_image.config_digest
    tags = await skopeo("list-tags", "--tls-verify=false", f"--creds=x:{NODE}",
                        f"docker://{host}/tools/busybox")
    assert json.loads(tags)["Tags"] == ["1"]


async def test_api_answers_and_refusals(
    busybox_image: Image, image_store: ImageStore, served: tuple[str, ImageStore],
) -> None:  # fmt: skip
    host, server_store = served

    async def get(path: str, token: str = NODE, method: str = "GET", data: bytes | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        url = path if path.startswith("http") else f"http://{host}{path}"
        async with aiohttp.ClientSession() as http, http.request(
            method, url, data=data,
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        ) as response:  # fmt: skip
            return response.status, dict(response.headers), await response.read()

    status, headers, _ = await get("/v2/", token="bad")
    assert status == 401 and headers["WWW-Authenticate"].startswith('Bearer realm="http://')
    status, headers, _ = await get("/v2/")
    assert status == 200 and headers["Docker-Distribution-API-Version"] == "registry/2.0"

    # the server store starts empty: push a layer blob by hand
    layer = busybox_image.layers[0]
    data = image_store.blob_path(layer.digest).read_bytes()
    status, headers, _ = await get("/v2/x/blobs/uploads/", ADMIN, "POST")
    assert status == 202
    location = headers["Location"]
    status, headers, body = await get(location, ADMIN, "PATCH", data[:10],
                                {"Content-Range": "5-14"})  # fmt: skip
    assert status == 416  # a chunk that does not start where the upload ends
    status, _, _ = await get(f"{location}?digest=sha256:{'0' * 64}", ADMIN, "PUT", data)
    assert status == 400  # digest mismatch: nothing stored
    assert not server_store.has_blob(layer.digest)
    status, headers, _ = await get(f"/v2/x/blobs/uploads/?digest={layer.digest}", ADMIN, "POST",
                                   data)
    assert status == 201 and server_store.has_blob(layer.digest)
    status, _, body = await get(f"/v2/x/blobs/{layer.digest}", headers={"Range": "bytes=0-9"})
    assert status == 206 and body == data[:10]

    both = json.dumps({"schemaVersion": 2, "manifests": [], "config": {}, "layers": []})
    status, _, body = await get("/v2/x/manifests/bad", ADMIN, "PUT", both.encode(),
                          {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 400 and b"MANIFEST_INVALID" in body
    status, _, _ = await get("/v2/x/manifests/missing")
    assert status == 404


async def test_the_api_server_serves_v2_over_tls_with_its_tokens(
    busybox_image: Image, image_store: ImageStore, tmp_path: Path
) -> None:
    from dockyard.api.app import ApiConfig, build_app
    from dockyard.api.tls import ensure_pki, server_ssl_context
    from dockyard.api.tokens import TokenFile
    from dockyard.store.sqlite import SQLiteStore

    data_dir = tmp_path / "server-data"
    data_dir.mkdir()
    pki = ensure_pki(data_dir, ["127.0.0.1"])
    cert_dir = tmp_path / "certs"  # skopeo's --cert-dir: the CA as a .crt file
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    tokens = TokenFile(data_dir)
    admin, node = tokens.create("admin"), tokens.create("node", "n1")
    store = await SQLiteStore.open(data_dir / "state.db")
    runner = web.AppRunner(build_app(ApiConfig(store=store, tokens=tokens, data_dir=data_dir)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
    await site.start()
    try:
        host = f"127.0.0.1:{runner.addresses[0][1]}"
        name = f"{host}/my-nginx:latest"
        image_store.tag("busybox", name)
        ca = {"ca_file": pki / "ca.crt"}
        with pytest.raises(RegistryError, match="403"):
            await tls_client(tmp_path, host, node, **ca).push(image_store, name)
        await tls_client(tmp_path, host, admin, **ca).push(image_store, name)
        assert ImageStore(data_dir).resolve("my-nginx").id == busybox_image.id
        pulled = await tls_client(tmp_path, host, node, **ca).pull(ImageStore(tmp_path / "n1"),
                                                                   f"{host}/my-nginx")
        assert pulled.manifest_digest == busybox_image.manifest_digest
        await skopeo("copy", f"--src-cert-dir={cert_dir}", f"--src-registry-token={node}",
                     f"docker://{host}/my-nginx:latest", f"oci:{tmp_path / 'out'}:x")
        index = json.loads((tmp_path / "out" / "index.json").read_text())
        assert index["manifests"][0]["digest"] == busybox_image.manifest_digest
    finally:
        await runner.cleanup()
        await store.close()


def tls_client(tmp_path: Path, host: str, token: str, ca_file: Path) -> RegistryClient:
    credentials = CredentialStore(tmp_path / f"tls-cfg-{token[:8]}")
    credentials.store(host, "user", token)
    return RegistryClient(credentials, ca_file=ca_file)
