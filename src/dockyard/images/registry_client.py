"""Registry client: pull and push images over the OCI distribution API (aiohttp).

Speaks what Docker's client speaks: `GET /v2/` ping; token auth (a 401 with
`WWW-Authenticate: Bearer realm=...,service=...,scope=...` sends us to the realm for a token,
with basic credentials if we have them) and basic auth; manifests by tag or digest with the
OCI and Docker media types; manifest lists and OCI indexes resolved to linux/<this machine's
arch>; blob uploads monolithic (one PUT) up to `chunk_size` and chunked (PATCH with
Content-Range, then PUT) above it; cross-repository mounts (`?mount=&from=`) for blobs the
store knows came from another repository on the same registry; parallel blob transfers
with progress events.

Invariants:
- Every byte fetched is hashed as it streams in; a manifest whose content does not hash to
  the digest asked for (or announced in Docker-Content-Digest), a document that claims to be
  both an index and an image, or a blob longer than its descriptor says is refused at once.
- Downloads go to DATA_DIR/images/tmp/pull-<hex>.partial and become blobs only by rename
  after verification; an interrupted download resumes with a Range request. On any failure
  of a pull, blobs this pull added are removed again and no name is written: nothing is
  half-stored.
- A redirect to another host is refused while the request carries credentials (they would
  leak); redirects are followed by hand, at most MAX_REDIRECTS.
- Loopback registries without --insecure are tried with HTTPS first, then plain HTTP (as
  Docker treats localhost); other hosts need HTTPS unless `insecure`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlparse

import aiohttp

from dockyard.images import oci
from dockyard.images.credentials import CredentialStore
from dockyard.images.digest import CHUNK, digest_hex, sha256_digest
from dockyard.images.reference import DEFAULT_REGISTRY, Reference, parse_reference
from dockyard.images.store import Image, ImageStore

MAX_MANIFEST = 4 << 20
MAX_REDIRECTS = 5
DEFAULT_CHUNK = 16 << 20
DEFAULT_PARALLEL = 3
DOCKER_HUB_API = "registry-1.docker.io"
ACCEPT_MANIFESTS = ", ".join([oci.OCI_MANIFEST, oci.DOCKER_MANIFEST, oci.OCI_INDEX,
                              oci.DOCKER_MANIFEST_LIST])  # fmt: skip
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')
LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$")


class RegistryError(RuntimeError):
    """A registry operation that failed or was refused; the message says why."""


@dataclass(frozen=True)
class TransferEvent:
    """Progress of one blob: action is pull, push, exists, mounted or done."""

    digest: str
    action: str
    done: int
    total: int


Events = Callable[[TransferEvent], None]


def _quiet(event: TransferEvent) -> None:
    return None


class _Session:
    """One registry and repository: base URL, auth state, the aiohttp session."""

    def __init__(self, client: RegistryClient, http: aiohttp.ClientSession, registry: str,
                 repository: str, actions: str) -> None:  # fmt: skip
        self.client = client
        self.http = http
        self.registry = registry
        self.host = DOCKER_HUB_API if registry == DEFAULT_REGISTRY else registry
        self.repository = repository
        self.scope = f"repository:{repository}:{actions}"
        self.base = ""
        self.authorization = ""
        self.credentials = client.credentials.get(registry) if client.credentials else None

    async def ping(self) -> None:
        """Find the scheme (https, or http for loopback/insecure) and check the API."""
        schemes = ["http"] if self.client.insecure else ["https"]
        if not self.client.insecure and LOOPBACK.match(self.host):
            schemes.append("http")
        last: Exception | None = None
        for scheme in schemes:
            self.base = f"{scheme}://{self.host}"
            try:
                async with await self.request("GET", "/v2/", expect=(200,)):
                    return
            except (aiohttp.ClientSSLError, aiohttp.ClientConnectorError,
                    aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
                last = e
        raise RegistryError(f"cannot reach registry {self.host}: {last}")

    async def request(
        self, method: str, path: str, *, expect: tuple[int, ...], headers: dict[str, str]
        | None = None, data: bytes | None = None, params: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:  # fmt: skip
        """Send a request (auth, redirects by hand); return a response with an expected status."""
        url = path if path.startswith("http") else self.base + path
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        for attempt in range(2):
            response = await self._follow(method, url, headers or {}, data)
            if response.status == 401 and attempt == 0:
                challenge = response.headers.get("WWW-Authenticate", "")
                response.release()
                await self._authenticate(challenge)
                continue
            if response.status in expect:
                return response
            body = (await response.read())[:2000].decode(errors="replace")
            response.release()
            raise RegistryError(
                f"{method} {url}: registry answered {response.status}: {_error_text(body)}"
            )
        raise RegistryError(f"{method} {url}: authentication failed; run `dockyard login "
                            f"{self.registry}` with valid credentials")  # fmt: skip

    async def _follow(self, method: str, url: str, headers: dict[str, str],
                      data: bytes | None) -> aiohttp.ClientResponse:  # fmt: skip
        origin = urlparse(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            sent = dict(headers)
            if self.authorization and urlparse(url).netloc == origin:
                sent["Authorization"] = self.authorization
            response = await self.http.request(method, url, headers=sent, data=data,
                                               allow_redirects=False)  # fmt: skip
            if response.status not in (301, 302, 303, 307, 308):
                return response
            location = response.headers.get("Location", "")
            response.release()
            target = urljoin(url, location)
            if urlparse(target).netloc != origin and (self.authorization or
                                                      urlparse(target).username):
                raise RegistryError(
                    f"{method} {url}: registry redirected to another host "
                    f"({urlparse(target).hostname}) while credentials were in use; refused"
                )
            url = target
            if response.status == 303:
                method, data = "GET", None
        raise RegistryError(f"{method} {url}: more than {MAX_REDIRECTS} redirects")

    async def _authenticate(self, challenge: str) -> None:
        scheme, _, rest = challenge.partition(" ")
        params = dict(_AUTH_PARAM.findall(rest))
        if scheme.lower() == "basic":
            if self.credentials is None:
                raise RegistryError(f"registry {self.registry} wants a login: run `dockyard "
                                    f"login {self.registry}`")  # fmt: skip
            user, password = self.credentials
            self.authorization = "Basic " + base64.b64encode(
                f"{user}:{password}".encode()).decode()
            return
        if scheme.lower() != "bearer" or "realm" not in params:
            raise RegistryError(f"registry {self.registry}: unsupported auth challenge "
                                f"{challenge!r}")  # fmt: skip
        self.authorization = "Bearer " + await self._token(params)

    async def _token(self, params: dict[str, str]) -> str:
        query = {"service": params.get("service", "")}
        if self.repository:
            query["scope"] = self.scope
        headers = {}
        if self.credentials is not None:
            user, password = self.credentials
            headers["Authorization"] = "Basic " + base64.b64encode(
                f"{user}:{password}".encode()).decode()
            query["account"] = user
        realm = params["realm"]
        async with self.http.get(realm, params=query, headers=headers) as response:
            if response.status != 200:
                raise RegistryError(
                    f"token request to {realm} answered {response.status}: check the "
                    f"credentials (`dockyard login {self.registry}`)"
                )
            body = await response.json(content_type=None)
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"token endpoint {realm} returned no token")
        return str(token)


class RegistryClient:
    """Pulls images into and pushes them out of an ImageStore."""

    def __init__(
        self, credentials: CredentialStore | None = None, *, insecure: bool = False,
        tls_verify: bool = True, ca_file: Path | None = None, parallel: int = DEFAULT_PARALLEL,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:  # fmt: skip
        self.credentials = credentials
        self.insecure = insecure
        self.tls_verify = tls_verify
        self.ca_file = ca_file
        self.parallel = parallel
        self.chunk_size = chunk_size

    @contextlib.asynccontextmanager
    async def _session(self, registry: str, repository: str, actions: str,
                       credentials: tuple[str, str] | None = None) -> Any:  # fmt: skip
        ssl_context: ssl.SSLContext | bool = True
        if not self.tls_verify:
            ssl_context = False
        elif self.ca_file is not None:
            ssl_context = ssl.create_default_context(cafile=str(self.ca_file))
        connector = aiohttp.TCPConnector(ssl=ssl_context, limit=self.parallel + 2)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            session = _Session(self, http, registry, repository, actions)
            if credentials is not None:
                session.credentials = credentials
            await session.ping()
            yield session

    # -- login ------------------------------------------------------------------------------

    async def login(self, registry: str, username: str, password: str) -> None:
        """Check credentials against the registry, then store them."""
        async with self._session(registry, "", "pull", (username, password)):
            pass  # the ping answered 200 with these credentials
        if self.credentials is not None:
            self.credentials.store(registry, username, password)

    # -- pull -------------------------------------------------------------------------------

    async def pull(self, store: ImageStore, name: str, on_event: Events = _quiet) -> Image:
        """Pull `name` into the store and name it; return the image."""
        ref = parse_reference(name)
        added: list[str] = []
        try:
            async with self._session(ref.registry, ref.repository, "pull") as session:
                manifest_bytes, manifest = await self._image_manifest(session, ref)
                config_desc = manifest["config"]
                layer_descs = list(manifest.get("layers") or [])
                await self._fetch_blobs(session, store, [config_desc, *layer_descs], added,
                                        on_event)  # fmt: skip
            config_bytes = store.read_blob(config_desc["digest"])
            image = await asyncio.to_thread(store.add_image, str(ref), manifest_bytes,
                                            config_bytes)  # fmt: skip
        except BaseException:
            for digest in added:
                store.blob_path(digest).unlink(missing_ok=True)
            raise
        with contextlib.suppress(OSError):
            _remember_sources(store, [d["digest"] for d in [config_desc, *layer_descs]],
                              f"{ref.registry}/{ref.repository}")  # fmt: skip
        return image

    async def _image_manifest(self, session: _Session, ref: Reference) -> tuple[
            bytes, dict[str, Any]]:
        data, doc = await self._manifest(session, ref.digest or ref.tag or "latest", ref.digest)
        if _is_index(doc):
            digest = _choose_platform(doc)
            data, doc = await self._manifest(session, digest, digest)
            if _is_index(doc):
                raise RegistryError(f"{digest}: an index inside an index is not supported")
        if doc.get("mediaType", oci.OCI_MANIFEST) not in oci.MANIFEST_TYPES or \
                not isinstance(doc.get("config"), dict):
            raise RegistryError(f"{ref}: unsupported manifest type {doc.get('mediaType')!r}")
        return data, doc

    async def _manifest(self, session: _Session, reference: str,
                        expected: str | None) -> tuple[bytes, dict[str, Any]]:  # fmt: skip
        path = f"/v2/{session.repository}/manifests/{reference}"
        response = await session.request("GET", path, expect=(200,),
                                         headers={"Accept": ACCEPT_MANIFESTS})  # fmt: skip
        async with response:
            data = await _read_limited(response, MAX_MANIFEST, f"manifest {reference}")
            announced = response.headers.get("Docker-Content-Digest")
        actual = sha256_digest(data)
        for claim in (expected, announced):
            if claim and claim.startswith("sha256:") and claim != actual:
                raise RegistryError(
                    f"manifest {session.repository}:{reference} hashes to {actual}, not "
                    f"{claim}; refused"
                )
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise RegistryError(f"manifest {reference} is not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"manifest {reference} is not a JSON object")
        if "manifests" in doc and ("layers" in doc or "config" in doc):
            raise RegistryError(
                f"manifest {reference} claims to be both an index and an image; refused"
            )
        return data, doc

    async def _fetch_blobs(self, session: _Session, store: ImageStore,
                           descs: list[dict[str, Any]], added: list[str],
                           on_event: Events) -> None:  # fmt: skip
        limit = asyncio.Semaphore(self.parallel)

        async def one(desc: dict[str, Any]) -> None:
            async with limit:
                if await self._fetch_blob(session, store, desc, on_event):
                    added.append(desc["digest"])
                    if desc.get("mediaType") in oci.LAYER_TYPES:
                        # Measure the diff id now, overlapping the other downloads;
                        # add_image then finds it recorded.
                        await asyncio.to_thread(store.layer_info, desc["digest"])

        await asyncio.gather(*(one(d) for d in _unique(descs)))

    async def _fetch_blob(self, session: _Session, store: ImageStore, desc: dict[str, Any],
                          on_event: Events) -> bool:  # fmt: skip
        digest, size = str(desc.get("digest")), int(desc.get("size", -1))
        digest_hex(digest)
        if size < 0:
            raise RegistryError(f"blob {digest}: descriptor has no size")
        if store.has_blob(digest):
            on_event(TransferEvent(digest, "exists", size, size))
            return False
        partial = store.tmp_dir / f"pull-{digest_hex(digest)}.partial"
        hasher = hashlib.sha256()
        have = _rehash(partial, hasher, size)
        headers = {"Range": f"bytes={have}-"} if have else {}
        response = await session.request("GET", f"/v2/{session.repository}/blobs/{digest}",
                                         expect=(200, 206), headers=headers)  # fmt: skip
        async with response:
            if response.status == 200 and have:
                hasher, have = hashlib.sha256(), 0
            try:
                have = await self._stream_to(response, partial, have, hasher, desc, on_event)
            except RegistryError:
                partial.unlink(missing_ok=True)
                raise
        actual = "sha256:" + hasher.hexdigest()
        if have != size or actual != digest:
            partial.unlink(missing_ok=True)
            raise RegistryError(f"blob {digest}: got {have} bytes hashing to {actual}; "
                                f"descriptor says {size} bytes; refused")  # fmt: skip
        os.chmod(partial, 0o644)
        os.rename(partial, store.blob_path(digest))
        on_event(TransferEvent(digest, "done", size, size))
        return True

    @staticmethod
    async def _stream_to(response: aiohttp.ClientResponse, partial: Path, have: int,
                         hasher: Any, desc: dict[str, Any], on_event: Events) -> int:  # fmt: skip
        digest, size = str(desc["digest"]), int(desc["size"])
        with open(partial, "ab" if have else "wb") as out:
            async for chunk in response.content.iter_chunked(CHUNK):
                have += len(chunk)
                if have > size:
                    raise RegistryError(f"blob {digest} is larger than the {size} bytes its "
                                        "descriptor declares; refused")  # fmt: skip
                hasher.update(chunk)
                out.write(chunk)
                on_event(TransferEvent(digest, "pull", have, size))
        return have

    # -- push -------------------------------------------------------------------------------

    async def push(self, store: ImageStore, name: str, on_event: Events = _quiet) -> str:
        """Push the image named `name` to its registry; return the manifest digest."""
        ref = parse_reference(name)
        image = await asyncio.to_thread(store.resolve, name)
        target = f"{ref.registry}/{ref.repository}"
        async with self._session(ref.registry, ref.repository, "pull,push") as session:
            descs = [*(layer.to_oci() for layer in image.layers), image.manifest["config"]]
            limit = asyncio.Semaphore(self.parallel)

            async def one(desc: dict[str, Any]) -> None:
                async with limit:
                    await self._push_blob(session, store, desc, on_event)

            await asyncio.gather(*(one(d) for d in _unique(descs)))
            manifest = store.read_blob(image.manifest_digest)
            media_type = image.manifest.get("mediaType", oci.OCI_MANIFEST)
            path = f"/v2/{ref.repository}/manifests/{ref.tag or image.manifest_digest}"
            response = await session.request("PUT", path, expect=(201, 200), data=manifest,
                                             headers={"Content-Type": media_type})  # fmt: skip
            async with response:
                announced = response.headers.get("Docker-Content-Digest")
            if announced and announced != image.manifest_digest:
                raise RegistryError(f"registry stored the manifest as {announced}, expected "
                                    f"{image.manifest_digest}")  # fmt: skip
        with contextlib.suppress(OSError):
            _remember_sources(store, [d["digest"] for d in descs], target)
        return image.manifest_digest

    async def _push_blob(self, session: _Session, store: ImageStore, desc: dict[str, Any],
                         on_event: Events) -> None:  # fmt: skip
        digest, size = str(desc["digest"]), int(desc["size"])
        repo = session.repository
        head = await session.request("HEAD", f"/v2/{repo}/blobs/{digest}", expect=(200, 404))
        async with head:
            if head.status == 200:
                on_event(TransferEvent(digest, "exists", size, size))
                return
        location = await self._start_upload(session, store, digest, on_event, size)
        if location is None:
            return
        if size <= self.chunk_size:
            await self._put_whole(session, store, digest, location, size, on_event)
        else:
            await self._put_chunks(session, store, digest, location, size, on_event)

    async def _start_upload(self, session: _Session, store: ImageStore, digest: str,
                            on_event: Events, size: int) -> str | None:  # fmt: skip
        repo = session.repository
        path = f"/v2/{repo}/blobs/uploads/"
        for source in _known_sources(store, digest, session.registry):
            if source == repo:
                continue
            response = await session.request("POST", path, expect=(201, 202),
                                             params={"mount": digest, "from": source})
            async with response:
                if response.status == 201:
                    on_event(TransferEvent(digest, "mounted", size, size))
                    return None
                return _location(session, response)
        response = await session.request("POST", path, expect=(202,))
        async with response:
            return _location(session, response)

    async def _put_whole(self, session: _Session, store: ImageStore, digest: str,
                         location: str, size: int, on_event: Events) -> None:  # fmt: skip
        data = await asyncio.to_thread(store.blob_path(digest).read_bytes)
        response = await session.request(
            "PUT", location, expect=(201,), params={"digest": digest}, data=data,
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        response.release()
        on_event(TransferEvent(digest, "done", size, size))

    async def _put_chunks(self, session: _Session, store: ImageStore, digest: str,
                          location: str, size: int, on_event: Events) -> None:  # fmt: skip
        sent = 0
        with open(store.blob_path(digest), "rb") as blob:
            while sent < size:
                chunk = await asyncio.to_thread(blob.read, self.chunk_size)
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Range": f"{sent}-{sent + len(chunk) - 1}"}  # fmt: skip
                response = await session.request("PATCH", location, expect=(202,), data=chunk,
                                                 headers=headers)  # fmt: skip
                async with response:
                    location = _location(session, response)
                sent += len(chunk)
                on_event(TransferEvent(digest, "push", sent, size))
        response = await session.request("PUT", location, expect=(201,),
                                         params={"digest": digest})  # fmt: skip
        response.release()
        on_event(TransferEvent(digest, "done", size, size))


def _location(session: _Session, response: aiohttp.ClientResponse) -> str:
    location = response.headers.get("Location")
    if not location:
        raise RegistryError(f"registry {session.registry}: upload answer has no Location")
    return urljoin(session.base + "/", location)


async def _read_limited(response: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > limit:
            raise RegistryError(f"{what} is larger than {limit} bytes; refused")
    return bytes(data)


def _rehash(partial: Path, hasher: Any, size: int) -> int:
    """Hash an earlier partial download; return its length (0 if absent or too long)."""
    try:
        with open(partial, "rb") as f:
            have = 0
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
                have += len(chunk)
    except FileNotFoundError:
        return 0
    if have > size:
        partial.unlink(missing_ok=True)
        return 0
    return have


def _is_index(doc: dict[str, Any]) -> bool:
    return doc.get("mediaType") in oci.INDEX_TYPES or "manifests" in doc


def _choose_platform(index: dict[str, Any]) -> str:
    arch = oci.host_architecture()
    for entry in index.get("manifests") or []:
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == arch:
            return str(entry["digest"])
    offered = sorted({f"{(e.get('platform') or {}).get('os')}/"
                      f"{(e.get('platform') or {}).get('architecture')}"
                      for e in index.get("manifests") or []})  # fmt: skip
    raise RegistryError(f"no linux/{arch} image in the manifest list (it has "
                        f"{', '.join(offered) or 'nothing'})")  # fmt: skip


def _unique(descs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for desc in descs:
        seen.setdefault(str(desc.get("digest")), desc)
    return list(seen.values())


def _error_text(body: str) -> str:
    with contextlib.suppress(ValueError, AttributeError, TypeError, IndexError, KeyError):
        errors = json.loads(body)["errors"]
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    return body.strip() or "(no body)"


# Where each blob is known to live (registry/repository), for cross-repository mounts.
def _sources_dir(store: ImageStore) -> Path:
    path = store.root / "distribution"
    path.mkdir(exist_ok=True)
    return path


def _known_sources(store: ImageStore, digest: str, registry: str) -> list[str]:
    try:
        names = json.loads((_sources_dir(store) / digest_hex(digest)).read_text())
    except (OSError, ValueError):
        return []
    prefix = registry + "/"
    return [n[len(prefix):] for n in names if isinstance(n, str) and n.startswith(prefix)]


def _remember_sources(store: ImageStore, digests: list[str], repository: str) -> None:
    directory = _sources_dir(store)
    for digest in digests:
        path = directory / digest_hex(digest)
        try:
            names = list(json.loads(path.read_text()))
        except (OSError, ValueError):
            names = []
        if repository in names:
            continue
        names = (names + [repository])[-10:]
        fd, tmp = tempfile.mkstemp(dir=store.tmp_dir, prefix="dist.")
        with os.fdopen(fd, "w") as f:
            json.dump(names, f)
        os.rename(tmp, path)

