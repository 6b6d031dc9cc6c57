"""Support for the controller e2e tests (no tests here): a FakeKubelet, a test cluster handle
running the real ControllerManager against the real `dockyard server`, the fixtures that start
both (``server_fixture``, ``cluster_fixture``: a test module binds them to ``server`` and
``cluster``) and polling helpers.

The FakeKubelet is a test double for a node agent, used because these tests run the server
with ``--no-agent``: it writes pod status through the API (Running, Ready, startTime,
containerStatuses) the way an agent reports it, and confirms graceful deletions of bound pods.
Images listed in ``never_ready`` never become ready (a rollout to a broken image). The proof
with real agents and containers belongs to the agent's end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.client import ApiClient, Informer, NotFoundError, object_key
from dockyard.controllers.manager import ControllerManager, ControllerOptions
from tests.servers import RunningServer, start_server

KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"
Obj = dict[str, Any]
T = TypeVar("T")


def now_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeKubelet:
    """Test double of a node agent: marks a namespace's pods Running and Ready."""

    def __init__(self, api: ApiClient, namespace: str, never_ready: tuple[str, ...] = ("bad",),
                 node_name: str | None = None) -> None:
        self.api = api
        self.namespace = namespace
        self.never_ready = never_ready
        self.node_name = node_name
        self.informer = Informer(api.resource("v1", "pods", namespace))
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.paused = False

    async def start(self) -> None:
        self.informer.add_handler(self._seen, lambda old, new: self._seen(new), None)
        await self.informer.start()
        await self.informer.wait_for_sync(30)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.informer.stop()

    def resume(self) -> None:
        """Start acting again, catching up on every pod seen while paused."""
        self.paused = False
        cached = self.informer.list()
        for pod in cached:
            self._queue.put_nowait(object_key(pod))

    def _seen(self, pod: Obj) -> None:
        self._queue.put_nowait(object_key(pod))

    async def _run(self) -> None:
        while True:
            key = await self._queue.get()
            pod = self.informer.get_by_key(key)
            if pod is None or self.paused:
                continue
            try:
                await self._sync(pod)
            except NotFoundError:
                continue
            except Exception:  # a conflict: look again shortly from the fresh cache
                asyncio.get_running_loop().call_later(0.2, self._queue.put_nowait, key)

    def _wants_ready(self, pod: Obj) -> bool:
        images = [c.get("image", "") for c in pod["spec"].get("containers", [])]
        return not any(bad in image for image in images for bad in self.never_ready)

    async def _sync(self, cached: Obj) -> None:
        pods = self.api.resource("v1", "pods", self.namespace)
        meta = cached["metadata"]
        if meta.get("deletionTimestamp"):
            if meta.get("deletionGracePeriodSeconds"):
                with contextlib.suppress(NotFoundError):  # the kill is "confirmed" at once
                    await pods.delete(meta["name"], grace_period_seconds=0)
            return
        status = cached.get("status") or {}
        if status.get("phase") == "Running" or not self._wants_ready(cached):
            return
        pod = {**cached, "status": self.running_status(cached)}
        await pods.update_status(pod)

    @staticmethod
    def running_status(pod: Obj) -> Obj:
        stamp = now_stamp()
        ready = [{"type": t, "status": "True", "lastTransitionTime": stamp}
                 for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]
        containers = [{"name": c["name"], "image": c.get("image", ""), "imageID": "",
                       "ready": True, "started": True, "restartCount": 0,
                       "state": {"running": {"startedAt": stamp}}}
                      for c in pod["spec"].get("containers", [])]
        return {**(pod.get("status") or {}), "phase": "Running", "startTime": stamp,
                "conditions": ready, "containerStatuses": containers, "podIP": "10.0.0.1"}


class FakeNodeHeartbeat:
    """Test double of a node agent's heartbeat: a Node, its Lease renewed, Ready=True."""

    def __init__(self, api: ApiClient, name: str) -> None:
        self.api = api
        self.name = name
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        stamp = now_stamp()
        await self.api.resource("v1", "nodes").create({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady", "lastHeartbeatTime": stamp,
                                       "lastTransitionTime": stamp}]}})
        await self.api.resource("coordination.k8s.io/v1", "leases", "kube-node-lease").create({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40,
                     "renewTime": _micro_now()}})
        self.start()

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def post_ready(self) -> None:
        nodes = self.api.resource("v1", "nodes")
        node = await nodes.get(self.name)
        stamp = now_stamp()
        node["status"]["conditions"] = [{"type": "Ready", "status": "True",
                                         "reason": "KubeletReady", "lastHeartbeatTime": stamp,
                                         "lastTransitionTime": stamp}]
        await nodes.update_status(node)

    async def _renew(self) -> None:
        leases = self.api.resource("coordination.k8s.io/v1", "leases", "kube-node-lease")
        while True:
            with contextlib.suppress(Exception):
                await leases.patch(self.name, {"spec": {"renewTime": _micro_now()}}, "merge")
            await asyncio.sleep(0.3)

    async def remove(self) -> None:
        await self.stop()
        for rc in (self.api.resource("v1", "nodes"),
                   self.api.resource("coordination.k8s.io/v1", "leases", "kube-node-lease")):
            with contextlib.suppress(NotFoundError):
                await rc.delete(self.name)


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Cluster:
    """One test's view: the api client, its own namespace, the controllers and the kubelet."""

    server: RunningServer
    api: ApiClient
    namespace: str
    manager: ControllerManager
    kubelet: FakeKubelet | None
    cache_dir: Path

    def rc(self, api_version: str, plural: str) -> Any:
        return self.api.resource(api_version, plural, self.namespace)

    async def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run real kubectl against the server (in a thread, so the controllers keep going)."""
        cmd = [KUBECTL, "--kubeconfig", str(self.server.kubeconfig), "--cache-dir",
               str(self.cache_dir), "-n", self.namespace, *args]
        result = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True,
                                         timeout=120)
        if check:
            assert result.returncode == 0, f"{' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    async def pods(self, selector: str | None = None) -> list[Obj]:
        return (await self.rc("v1", "pods").list(label_selector=selector)).items

    async def replicasets(self) -> list[Obj]:
        return (await self.rc("apps/v1", "replicasets").list()).items

    async def events(self, reason: str) -> list[Obj]:
        items = (await self.rc("v1", "events").list()).items
        return [e for e in items if e.get("reason") == reason]


async def start_cluster(server: RunningServer, tmp_path: Path, kubelet: bool = True,
                        options: ControllerOptions | None = None) -> Cluster:
    api = ApiClient.from_kubeconfig(str(server.kubeconfig))
    namespace = f"ctl-{uuid.uuid4().hex[:8]}"
    await api.resource("v1", "namespaces").create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    manager = ControllerManager(api, options or ControllerOptions(workers=4))
    await manager.start()
    fake = FakeKubelet(api, namespace) if kubelet else None
    if fake is not None:
        await fake.start()
    return Cluster(server, api, namespace, manager, fake, tmp_path / "kubectl-cache")


async def stop_cluster(cluster: Cluster) -> None:
    if cluster.kubelet is not None:
        await cluster.kubelet.stop()
    await cluster.manager.stop()
    with contextlib.suppress(Exception):
        await cluster.api.resource("v1", "namespaces").delete(cluster.namespace)
    await cluster.api.close()


def server_fixture(*args: str, controllers: bool = False) -> Any:
    """Return a module-scoped ``server`` fixture: `dockyard server --no-agent` with ``args``.

    Without its own controllers by default: the test process runs them, with test options.
    """

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
        running = start_server(tmp_path_factory.mktemp("server") / "data", *args,
                               controllers=controllers)
        try:
            yield running
        finally:
            running.stop()

    return server


def cluster_fixture(kubelet: bool = True, **options: Any) -> Any:
    """Return a ``cluster`` fixture: ``start_cluster`` on the module's server, stopped after.

    ``options`` are ControllerOptions fields, made afresh for each test.
    """

    @pytest.fixture
    async def cluster(server: RunningServer, tmp_path: Path) -> AsyncIterator[Cluster]:
        c = await start_cluster(server, tmp_path, kubelet,
                                ControllerOptions(**options) if options else None)
        try:
            yield c
        finally:
            await stop_cluster(c)

    return cluster


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0,
                     interval: float = 0.1, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def deployment(name: str, replicas: int = 3, image: str = "nginx:1.25", **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}},
                     **spec}}


def replicaset(name: str, replicas: int = 2, image: str = "nginx:1.25", **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}},
                     **spec}}
