"""The server's registry: an image store served over the OCI distribution API under /v2/.

`add_registry_routes(app, store, authorize)` adds the routes to an aiohttp application:
`GET /v2/` (answers `Docker-Distribution-API-Version: registry/2.0`), manifests by tag or
digest (GET, HEAD, PUT), blobs (GET and HEAD with ranges), uploads (POST, PATCH, PUT, GET,
DELETE: monolithic, chunked, and cross-repository mounts), `tags/list`, `_catalog`, and
`GET /v2/token` for Docker's token flow. skopeo, Docker-style clients and
dockyard.images.registry_client all speak it.

Names: repository `R` is the store's image name parse_reference(R) normalises to, so
`library/my-nginx` and `my-nginx` both serve the store's `docker.io/library/my-nginx`.

Auth: the caller's `authorize(token, action)` decides ("ok", "forbidden" or
"unauthenticated") for action "pull" or "push". The token comes as `Authorization: Bearer
T`, or as the password of basic auth (`--creds user:T`); `/v2/token` trades basic
credentials for the same token, so `docker login`'s realm flow works. A 401 carries
`WWW-Authenticate: Bearer realm=".../v2/token",service="dockyard"`.

Invariants: an upload is a file in the store's tmp/ named by a random hex id, and becomes a
blob only by rename after its sha256 matched the digest the client gave; a manifest is
stored only through ImageStore.add_image, which checks its config and every layer; nothing
here imports the api server (the layering contract).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dockyard.images import oci
from dockyard.images.digest import CHUNK, sha256_digest
from dockyard.images.reference import DEFAULT_REGISTRY, parse_reference
from dockyard.images.store import ImageNotFoundError, ImageStore, ImageStoreError

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
MAX_MANIFEST = 4 << 20
SERVICE = "dockyard"
Authorize = Callable[[str, str], Awaitable[str] | str]
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_RANGE = re.compile(r"^(\d+)-(\d+)$")


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    body = {"errors": [{"code": code, "message": message, "detail": None}]}
    return web.json_response(body, status=status, headers={**API_VERSION_HEADER, **headers})


def request_token(request: web.Request) -> str:
    """Return the token a request carries (Bearer, or the password of Basic), or ''."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            return base64.b64decode(value.strip()).decode().partition(":")[2]
    return ""


class _Registry:
    """Route handlers over one ImageStore."""

    def __init__(self, store: ImageStore, authorize: Authorize) -> None:
        self.store = store
        self.authorize = authorize

    # -- auth -------------------------------------------------------------------------------

    async def check(self, request: web.Request, action: str) -> web.Response | None:
        """Return an error response if the request may not do `action`, else None."""
        verdict = self.authorize(request_token(request), action)
        if not isinstance(verdict, str):
            verdict = await verdict
        if verdict == "ok":
            return None
        if verdict == "forbidden":
            return _error(403, "DENIED", f"this token may not {action} images")
        realm = f"{request.scheme}://{request.host}/v2/token"
        return _error(401, "UNAUTHORIZED", "authentication required", **{
            "WWW-Authenticate": f'Bearer realm="{realm}",service="{SERVICE}"'})

    async def token(self, request: web.Request) -> web.Response:
        """Trade basic credentials (the password is a dockyard token) for a bearer token."""
        token = request_token(request)
        verdict = self.authorize(token, "pull")
        if not isinstance(verdict, str):
            verdict = await verdict
        if verdict != "ok":
            return _error(401, "UNAUTHORIZED", "give a dockyard token as the password")
        return web.json_response({"token": token, "access_token": token, "expires_in": 3600})

    # -- base and catalog -------------------------------------------------------------------

    async def base(self, request: web.Request) -> web.Response:
        denied = await self.check(request, "pull")
        return denied or web.json_response({}, headers=API_VERSION_HEADER)

    async def catalog(self, request: web.Request) -> web.Response:
        denied = await self.check(request, "pull")
        if denied:
            return denied
        images = await asyncio.to_thread(self.store.list_images)
        repos = sorted({_repository(i.reference) for i in images} - {""})
        return web.json_response({"repositories": repos}, headers=API_VERSION_HEADER)

    async def tags(self, request: web.Request) -> web.Response:
        denied = await self.check(request, "pull")
        if denied:
            return denied
        name = request.match_info["name"]
        wanted = _store_name(name)
        if wanted is None:
            return _error(404, "NAME_UNKNOWN", f"repository {name} is not known")
        images = await asyncio.to_thread(self.store.list_images)
        tags = sorted({ref.tag for ref in (parse_reference(i.reference) for i in images)
                       if ref.name == wanted and ref.tag})  # fmt: skip
        if not tags:
            return _error(404, "NAME_UNKNOWN", f"repository {name} is not known")
        return web.json_response({"name": name, "tags": tags}, headers=API_VERSION_HEADER)

    # -- manifests --------------------------------------------------------------------------

    async def get_manifest(self, request: web.Request) -> web.Response:
        denied = await self.check(request, "pull")
        if denied:
            return denied
        name, reference = request.match_info["name"], request.match_info["reference"]
        sep = "@" if _DIGEST.fullmatch(reference) else ":"
        try:
            image = await asyncio.to_thread(self.store.resolve, f"{name}{sep}{reference}")
            data = await asyncio.to_thread(self.store.read_blob, image.manifest_digest)
        except (ImageNotFoundError, ImageStoreError, ValueError):
            return _error(404, "MANIFEST_UNKNOWN", f"manifest {name}{sep}{reference} unknown")
        headers = {**API_VERSION_HEADER, "Docker-Content-Digest": image.manifest_digest,
                   "Content-Type": image.manifest.get("mediaType", oci.OCI_MANIFEST),
                   "Content-Length": str(len(data))}  # fmt: skip
        body = b"" if request.method == "HEAD" else data
        return web.Response(body=body, headers=headers)

    async def put_manifest(self, request: web.Request) -> web.Response:
        denied = await self.check(request, "push")
        if denied:
            return denied
        name, reference = request.match_info["name"], request.match_info["reference"]
        data = await request.content.read(MAX_MANIFEST + 1)
        if len(data) > MAX_MANIFEST:
            return _error(413, "SIZE_INVALID", f"manifest larger than {MAX_MANIFEST} bytes")
        digest = sha256_digest(data)
        by_digest = _DIGEST.fullmatch(reference) is not None
        if by_digest and reference != digest:
            return _error(400, "DIGEST_INVALID", f"manifest hashes to {digest}, not {reference}")
        problem = _manifest_problem(data)
        if problem:
            return _error(400, "MANIFEST_INVALID", problem)
        config_digest = json.loads(data)["config"]["digest"]
        if not self.store.has_blob(config_digest):
            return _error(400, "MANIFEST_BLOB_UNKNOWN", f"config blob {config_digest} unknown")
        ref = f"{name}@{digest}" if by_digest else f"{name}:{reference}"
        try:
            config = await asyncio.to_thread(self.store.read_blob, config_digest)
            await asyncio.to_thread(self.store.add_image, ref, data, config)
        except (ImageStoreError, ValueError) as e:
            return _error(400, "MANIFEST_INVALID", str(e))
        return web.Response(status=201, headers={
            **API_VERSION_HEADER, "Docker-Content-Digest": digest,
            "Location": f"/v2/{name}/manifests/{digest}"})  # fmt: skip

    # -- blobs ------------------------------------------------------------------------------

    async def get_blob(self, request: web.Request) -> web.StreamResponse:
        denied = await self.check(request, "pull")
        if denied:
            return denied
        digest = request.match_info["digest"]
        if not _DIGEST.fullmatch(digest) or not self.store.has_blob(digest):
            return _error(404, "BLOB_UNKNOWN", f"blob {digest} unknown")
        headers = {**API_VERSION_HEADER, "Docker-Content-Digest": digest,
                   "Content-Type": "application/octet-stream"}  # fmt: skip
        return web.FileResponse(self.store.blob_path(digest), headers=headers)

    # -- uploads ----------------------------------------------------------------------------

    def _upload_path(self, upload: str) -> Any:
        return self.store.tmp_dir / f"upload-{upload}"

    async def start_upload(self, request: web.Request) -> web.Response:
        denied = await self.check(request, "push")
        if denied:
            return denied
        name = request.match_info["name"]
        mount, digest = request.query.get("mount", ""), request.query.get("digest", "")
        if mount and _DIGEST.fullmatch(mount) and self.store.has_blob(mount):
            return _blob_created(name, mount)
        upload = uuid.uuid4().hex
        path = self._upload_path(upload)
        path.touch(mode=0o600)
        if digest:
            await _append(request, path)
            return await self._finish(name, upload, digest)
        return _upload_accepted(name, upload, 0)

    async def upload_status(self, request: web.Request) -> web.Response:
        denied = await self.check(request, "push")
        if denied:
            return denied
        name, upload = request.match_info["name"], request.match_info["upload"]
        path = self._upload_path(upload)
        if not _UPLOAD_ID.fullmatch(upload) or not path.exists():
            return _error(404, "BLOB_UPLOAD_UNKNOWN", f"upload {upload} unknown")
        if request.method == "DELETE":
            path.unlink(missing_ok=True)
            return web.Response(status=204, headers=API_VERSION_HEADER)
        response = _upload_accepted(name, upload, path.stat().st_size)
        response.set_status(204)
        return response

    async def patch_upload(self, request: web.Request) -> web.Response:
        denied = await self.check(request, "push")
        if denied:
            return denied
        name, upload = request.match_info["name"], request.match_info["upload"]
        path = self._upload_path(upload)
        if not _UPLOAD_ID.fullmatch(upload) or not path.exists():
            return _error(404, "BLOB_UPLOAD_UNKNOWN", f"upload {upload} unknown")
        size = path.stat().st_size
        match = _RANGE.match(request.headers.get("Content-Range", ""))
        if match and int(match.group(1)) != size:
            return _error(416, "BLOB_UPLOAD_INVALID",
                          f"chunk starts at {match.group(1)}; the upload has {size} bytes",
                          Range=f"0-{max(size - 1, 0)}")  # fmt: skip
        size = await _append(request, path)
        return _upload_accepted(name, upload, size)

    async def put_upload(self, request: web.Request) -> web.Response:
        denied = await self.check(request, "push")
        if denied:
            return denied
        name, upload = request.match_info["name"], request.match_info["upload"]
        path = self._upload_path(upload)
        if not _UPLOAD_ID.fullmatch(upload) or not path.exists():
            return _error(404, "BLOB_UPLOAD_UNKNOWN", f"upload {upload} unknown")
        await _append(request, path)
        return await self._finish(name, upload, request.query.get("digest", ""))

    async def _finish(self, name: str, upload: str, digest: str) -> web.Response:
        path = self._upload_path(upload)
        if not _DIGEST.fullmatch(digest):
            path.unlink(missing_ok=True)
            return _error(400, "DIGEST_INVALID", f"digest {digest!r} is not sha256:<64 hex>")
        actual = await asyncio.to_thread(_hash_file, path)
        if actual != digest:
            path.unlink(missing_ok=True)
            return _error(400, "DIGEST_INVALID", f"upload hashes to {actual}, not {digest}")
        if self.store.has_blob(digest):
            path.unlink(missing_ok=True)
        else:
            os.chmod(path, 0o644)
            os.rename(path, self.store.blob_path(digest))
        return _blob_created(name, digest)


def _manifest_problem(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except ValueError as e:
        return f"manifest is not JSON: {e}"
    if not isinstance(doc, dict):
        return "manifest is not a JSON object"
    if "manifests" in doc:
        return "manifest lists and indexes are not stored here; push one platform's image"
    if doc.get("mediaType", oci.OCI_MANIFEST) not in oci.MANIFEST_TYPES or \
            not isinstance(doc.get("config"), dict):
        return f"unsupported manifest type {doc.get('mediaType')!r}"
    return ""


async def _append(request: web.Request, path: Any) -> int:
    with open(path, "ab") as f:
        async for chunk in request.content.iter_chunked(CHUNK):
            f.write(chunk)
        return f.tell()


def _hash_file(path: Any) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _upload_accepted(name: str, upload: str, size: int) -> web.Response:
    return web.Response(status=202, headers={
        **API_VERSION_HEADER, "Location": f"/v2/{name}/blobs/uploads/{upload}",
        "Docker-Upload-UUID": upload, "Range": f"0-{max(size - 1, 0)}",
        "Content-Length": "0"})  # fmt: skip


def _blob_created(name: str, digest: str) -> web.Response:
    return web.Response(status=201, headers={
        **API_VERSION_HEADER, "Location": f"/v2/{name}/blobs/{digest}",
        "Docker-Content-Digest": digest, "Content-Length": "0"})  # fmt: skip


def _store_name(repository: str) -> str | None:
    try:
        return parse_reference(repository).name
    except ValueError:
        return None


def _repository(reference: str) -> str:
    ref = parse_reference(reference)
    if ref.registry == DEFAULT_REGISTRY:
        return ref.repository
    return "" if ":" in ref.registry else f"{ref.registry}/{ref.repository}"


def add_registry_routes(app: web.Application, store: ImageStore, authorize: Authorize) -> None:
    """Add the /v2/ registry routes over `store` to `app`."""
    registry = _Registry(store, authorize)
    router = app.router
    name = "/v2/{name:[a-z0-9][a-z0-9._/-]*}"
    router.add_get("/v2/", registry.base)
    router.add_get("/v2/token", registry.token)
    router.add_get("/v2/_catalog", registry.catalog)
    router.add_get(name + "/tags/list", registry.tags)
    router.add_get(name + "/manifests/{reference}", registry.get_manifest)  # HEAD too
    router.add_put(name + "/manifests/{reference}", registry.put_manifest)
    router.add_get(name + "/blobs/{digest}", registry.get_blob)
    router.add_post(name + "/blobs/uploads/", registry.start_upload)
    router.add_get(name + "/blobs/uploads/{upload}", registry.upload_status)
    router.add_delete(name + "/blobs/uploads/{upload}", registry.upload_status)
    router.add_patch(name + "/blobs/uploads/{upload}", registry.patch_upload)
    router.add_put(name + "/blobs/uploads/{upload}", registry.put_upload)
