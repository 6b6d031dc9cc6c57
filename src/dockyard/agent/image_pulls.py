"""Getting a container's image onto the node: the local store first, else a registry pull.

- A reference that names a registry host (``host:port/app:1``) is pulled from that host, with
  credentials from the node's Docker-style config.json when it has them.
- A short name (``my-nginx``, ``library/x``: Docker's default registry, which this machine
  cannot reach) is pulled from the cluster's own registry, the api server's ``/v2/``, with the
  node's token and the cluster CA — so an image built or pushed on any machine runs on every
  node. The pulled image is then tagged with the name the pod used.
- ``imagePullPolicy`` as the kubelet honours it: Never uses the local store only; IfNotPresent
  pulls only when the image is missing; Always pulls every time a container starts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from dockyard.images.credentials import CredentialStore
from dockyard.images.reference import DEFAULT_REGISTRY, parse_reference
from dockyard.images.registry_client import RegistryClient
from dockyard.images.store import Image, ImageNotFoundError, ImageStore


class ClusterCredentials(CredentialStore):
    """The node's token for the cluster registry; config.json for any other registry."""

    def __init__(self, config: Path, cluster_registry: str, token: str) -> None:
        super().__init__(config)
        self.cluster_registry = cluster_registry
        self.token = token

    def get(self, registry: str) -> tuple[str, str] | None:
        """Return (username, password) for a registry (the token as password for ours)."""
        if registry == self.cluster_registry:
            return ("node", self.token)
        return super().get(registry)


class ImagePuller:
    """Resolves a pod's image reference to a local image, pulling as the policy asks."""

    def __init__(self, store: ImageStore, server_url: str, token: str, ca_file: Path | None,
                 config_dir: Path) -> None:
        self.store = store
        self.cluster_registry = urlsplit(server_url).netloc
        credentials = ClusterCredentials(config_dir, self.cluster_registry, token)
        self.client = RegistryClient(credentials, ca_file=ca_file)
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, ref: str, policy: str) -> tuple[Image, bool]:
        """Return the image for ref and whether it was pulled now (ImageNotFoundError if not)."""
        if policy == "Never":
            return await asyncio.to_thread(self.store.resolve, ref), False
        if policy != "Always":
            try:
                return await asyncio.to_thread(self.store.resolve, ref), False
            except ImageNotFoundError:
                pass
        async with self._locks.setdefault(ref, asyncio.Lock()):  # one pull per name at a time
            return await self._pull(ref), True

    async def _pull(self, ref: str) -> Image:
        parsed = parse_reference(ref)
        if parsed.registry != DEFAULT_REGISTRY:
            return await self.client.pull(self.store, str(parsed))
        source = f"{self.cluster_registry}/{parsed.repository}"
        source += f"@{parsed.digest}" if parsed.digest else f":{parsed.tag}"
        await self.client.pull(self.store, source)
        if not parsed.digest:
            await asyncio.to_thread(self.store.tag, source, str(parsed))
        return await asyncio.to_thread(self.store.resolve, str(parsed))
