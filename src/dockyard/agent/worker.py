"""The pod worker: one task per pod that drives the pod's containers toward its spec.

Level-triggered, as the kubelet's pod workers: `sync()` reads the pod (the informer's latest
copy), the runtime's containers and the probe results, takes the one next step for each
container (create the sandbox, run the next init container, start or restart a container after
its back-off, kill one whose liveness probe failed), then writes the pod's status if it
changed. It runs on every change of the pod, of its containers (the agent's relist wakes it)
or of a probe result, and when a timer (back-off, image retry) is due.

Invariants:
- Restart counts are the runtime's attempt numbers (kept on disk with the containers), so a new
  agent process reports the same counts and adopts running containers without touching them.
- The latest two attempts of each container are kept (for `kubectl logs --previous`); older
  ones are removed, with their image holds.
- Deletion: preStop hooks, then SIGTERM, the grace period, SIGKILL; sandbox, volumes and holds
  are removed before the agent deletes the pod object with gracePeriodSeconds=0 (uid
  precondition), so the object goes away only when its containers are gone.
- Every reason a container cannot run is in its status (waiting reason + message) and in an
  Event; nothing waits silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from dockyard.agent import podspec
from dockyard.agent.podspec import ConfigError, PodContext
from dockyard.agent.probes import Prober, ProbeState, run_probe
from dockyard.agent.volumes import VolumeError, container_mounts, prepare_volumes
from dockyard.client import ApiError, NotFoundError
from dockyard.images.registry_client import RegistryError
from dockyard.images.store import Image, ImageNotFoundError
from dockyard.runtime import ContainerConfig, ContainerStatus, Sandbox, SandboxConfig

if TYPE_CHECKING:
    from dockyard.agent.agent import Agent

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Statuses = dict[str, list[ContainerStatus]]
RESYNC_SECONDS = 30.0
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_LABEL = "io.kubernetes.container.name"


def rfc3339(ts: float | None) -> str | None:
    """Return a Unix time as RFC 3339 seconds (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodWorker:
    """Keeps one pod's containers as its spec says and reports its status."""

    def __init__(self, agent: Agent, uid: str, pod: Obj | None) -> None:
        self.agent = agent
        self.uid = uid
        self.pod = pod
        self.last_pod = pod
        self.wake = asyncio.Event()
        self.waiting: dict[str, tuple[str, str]] = {}  # container -> (reason, message)
        self.failures: dict[str, tuple[int, float]] = {}  # start failures: (count, retry at)
        self.reset_attempt: dict[str, int] = {}  # back-off streak starts after this attempt
        self.probers: dict[tuple[str, str], Prober] = {}
        self.images: dict[str, Image] = {}
        self.due: float | None = None
        self.done = asyncio.Event()
        self.task = asyncio.create_task(self._loop(), name=f"pod-worker-{uid[:8]}")

    # -- loop ---------------------------------------------------------------------------

    def update(self, pod: Obj | None) -> None:
        """Give the worker the pod's latest object (None: deleted) and wake it."""
        self.pod = pod
        if pod is not None:
            self.last_pod = pod
        self.wake.set()

    def schedule(self, seconds: float) -> None:
        """Ask for a sync after `seconds` at the latest."""
        when = time.monotonic() + max(0.0, seconds)
        self.due = when if self.due is None else min(self.due, when)

    async def _loop(self) -> None:
        try:
            while True:
                self.wake.clear()
                self.due = None
                try:
                    if await self.sync():
                        return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("pod %s: sync failed; retrying", self.name)
                    self.schedule(2.0)
                timeout = RESYNC_SECONDS if self.due is None else self.due - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), max(0.0, timeout))
        finally:
            await self._stop_probers()
            self.done.set()

    async def stop(self) -> None:
        """Stop the worker without touching its containers (agent shutdown)."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task

    @property
    def name(self) -> str:
        """Return namespace/name of the pod (for logs)."""
        meta = (self.last_pod or {}).get("metadata") or {}
        return f"{meta.get('namespace')}/{meta.get('name')}"

    # -- sync ---------------------------------------------------------------------------

    async def sync(self) -> bool:
        """Take the next steps for the pod; return True when the worker is finished."""
        pod = self.pod
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            await self.terminate()
            return True
        sandbox = self.agent.sandbox_of(self.uid)
        statuses = await self._containers(sandbox)
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            await self._stop_running(statuses, reason="the pod has finished")
            return False
        if sandbox is None:
            sandbox = await self._make_sandbox(pod)
            if sandbox is None:
                return False
        ctx = await self._context(pod, sandbox)
        volumes = await self._volumes(pod, ctx)
        if volumes is not None and await self._sync_init(pod, sandbox, statuses, ctx, volumes):
            await self._sync_containers(pod, sandbox, statuses, ctx, volumes)
        statuses = await self._containers(sandbox)
        await self._write_status(pod, sandbox, statuses)
        return False

    async def _containers(self, sandbox: Sandbox | None) -> dict[str, list[ContainerStatus]]:
        """Return this pod's containers by name, attempts ascending."""
        if sandbox is None:
            return {}
        out: dict[str, list[ContainerStatus]] = {}
        for c in await self.agent.containers(sandbox.id):
            out.setdefault(c.name, []).append(c)
        for attempts in out.values():
            attempts.sort(key=lambda c: c.attempt)
        return out

    async def _make_sandbox(self, pod: Obj) -> Sandbox | None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        dns = pod_dns(pod, self.agent.options.cluster_dns, self.agent.options.cluster_domain)
        config = SandboxConfig(
            pod_uid=self.uid, name=meta["name"], namespace=meta.get("namespace", "default"),
            hostname=str(spec.get("hostname") or ""),
            port_mappings=podspec.port_mappings(pod), labels={POD_UID_LABEL: self.uid},
            dns_servers=dns[0], dns_searches=dns[1], dns_options=dns[2],
        )  # fmt: skip
        try:
            async with self.agent.sandbox_slots:
                sandbox = await self.agent.runtime.create_sandbox(config)
        except Exception as e:
            self._event("Warning", "FailedCreatePodSandBox",
                        f"Failed to create pod sandbox: {e}")
            for c in podspec.all_containers(pod):
                self.waiting[c["name"]] = ("ContainerCreating", f"sandbox: {e}")
            await self._write_status(pod, None, {})
            self.schedule(5.0)
            return None
        self.agent.sandbox_created(sandbox)
        return sandbox

    async def _context(self, pod: Obj, sandbox: Sandbox) -> PodContext:
        maps, secrets = podspec.referenced_objects(pod)
        namespace = pod["metadata"].get("namespace", "default")
        return PodContext(
            pod_ip=sandbox.ip, host_ip=self.agent.node_ip,
            config_maps={n: await self.agent.fetch("configmaps", namespace, n) for n in maps},
            secrets={n: await self.agent.fetch("secrets", namespace, n) for n in secrets},
        )  # fmt: skip

    async def _volumes(self, pod: Obj, ctx: PodContext) -> dict[str, Any] | None:
        try:
            return await asyncio.to_thread(prepare_volumes, self.agent.options.data_dir, pod,
                                           ctx, self.agent.options.allowed_host_paths)
        except (VolumeError, OSError, ConfigError) as e:
            self._event("Warning", "FailedMount", str(e))
            for c in podspec.all_containers(pod):
                self.waiting[c["name"]] = ("ContainerCreating", str(e))
            self.schedule(10.0)
            return None

    async def _sync_init(self, pod: Obj, sandbox: Sandbox, statuses: Statuses,
                         ctx: PodContext, volumes: dict[str, Any]) -> bool:  # fmt: skip
        """Run init containers in order; return True when all have succeeded."""
        policy = pod["spec"].get("restartPolicy", "Always")
        for container in pod["spec"].get("initContainers") or []:
            attempts = statuses.get(container["name"]) or []
            latest = attempts[-1] if attempts else None
            if latest is not None and latest.state == "exited" and latest.exit_code == 0:
                continue
            if latest is not None and latest.state in ("running", "created", "unknown"):
                self.schedule(1.0)
                return False
            if latest is not None and policy == "Never":
                return False  # the init container failed: the pod fails
            await self._start_or_back_off(pod, sandbox, container, latest, ctx, volumes)
            return False
        return True

    async def _sync_containers(self, pod: Obj, sandbox: Sandbox,
                               statuses: dict[str, list[ContainerStatus]], ctx: PodContext,
                               volumes: dict[str, Any]) -> None:  # fmt: skip
        policy = pod["spec"].get("restartPolicy", "Always")
        for container in pod["spec"].get("containers") or []:
            attempts = statuses.get(container["name"]) or []
            latest = attempts[-1] if attempts else None
            if latest is not None and latest.state == "running":
                self.waiting.pop(container["name"], None)
                if latest.image != str(container.get("image")):
                    await self._restart_changed(pod, container, latest)
                    continue
                await self._ensure_probers(pod, container, latest, sandbox)
                await self._kill_if_unhealthy(pod, container, latest)
                continue
            if latest is not None and latest.state in ("created", "unknown"):
                self.schedule(1.0)  # unknown: conmon has not recorded the exit code yet
                continue
            if latest is not None and not podspec.should_restart(policy, latest.exit_code):
                continue
            await self._start_or_back_off(pod, sandbox, container, latest, ctx, volumes)

    async def _start_or_back_off(self, pod: Obj, sandbox: Sandbox, container: Obj,
                                 latest: ContainerStatus | None, ctx: PodContext,
                                 volumes: dict[str, Any]) -> None:  # fmt: skip
        name = container["name"]
        now = time.time()
        count, retry_at = self.failures.get(name, (0, 0.0))
        if retry_at > now:
            self.schedule(retry_at - now)
            return
        if latest is not None and latest.state == "exited":
            ran = (latest.finished_at or now) - (latest.started_at or now)
            if ran >= podspec.BACKOFF_RESET_AFTER:
                self.reset_attempt[name] = latest.attempt
            streak = latest.attempt + 1 - self.reset_attempt.get(name, 0)
            delay = podspec.restart_delay(streak - 1) if streak > 1 else 0.0
            ready_at = (latest.finished_at or now) + delay
            if ready_at > now:
                meta = pod["metadata"]
                message = (f"back-off {int(delay)}s restarting failed container={name} "
                           f"pod={meta['name']}_{meta.get('namespace')}({self.uid})")
                if self.waiting.get(name, ("",))[0] != "CrashLoopBackOff":
                    self._event("Warning", "BackOff", "Back-off restarting failed container "
                                f"{name} in pod {meta['name']}_{meta.get('namespace')}({self.uid})")
                self.waiting[name] = ("CrashLoopBackOff", message)
                self.schedule(ready_at - now)
                return
        attempt = latest.attempt + 1 if latest is not None else 0
        await self._start(pod, sandbox, container, attempt, ctx, volumes)

    def _fail(self, name: str, reason: str, message: str, event_reason: str = "Failed") -> None:
        count, _ = self.failures.get(name, (0, 0.0))
        delay = podspec.restart_delay(count + 1)
        self.failures[name] = (count + 1, time.time() + delay)
        self.waiting[name] = (reason, message)
        self._event("Warning", event_reason, f"Error: {message}" if event_reason == "Failed"
                    else message)  # fmt: skip
        self.schedule(delay)

    async def _start(self, pod: Obj, sandbox: Sandbox, container: Obj, attempt: int,
                     ctx: PodContext, volumes: dict[str, Any]) -> None:  # fmt: skip
        name = container["name"]
        image = await self._image(container)
        if image is None:
            return
        try:
            env = podspec.container_env(pod, container, ctx)
            mounts = container_mounts(container, volumes)
        except (ConfigError, VolumeError) as e:
            self._fail(name, "CreateContainerConfigError", str(e))
            return
        security = container.get("securityContext") or {}
        pod_security = pod["spec"].get("securityContext") or {}
        user = security.get("runAsUser", pod_security.get("runAsUser"))
        group = security.get("runAsGroup")
        layers = await asyncio.to_thread(self.agent.images.unpacked_layers, image)
        config = ContainerConfig(
            name=name, lower_dirs=layers, image_config=image.config,
            command=podspec.expanded_args(container.get("command") or [], env),
            args=podspec.expanded_args(container.get("args") or [], env), env=env,
            working_dir=str(container.get("workingDir") or ""),
            user="" if user is None else (f"{user}:{group}" if group is not None else str(user)),
            mounts=mounts, resources=podspec.resources(container),
            privileged=bool(security.get("privileged")), tty=bool(container.get("tty")),
            stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")),
            attempt=attempt, image=str(container["image"]),
            labels={POD_UID_LABEL: self.uid, CONTAINER_LABEL: name},
            annotations={"io.dockyard.image.id": self._image_id(image)},
        )  # fmt: skip
        async with self.agent.container_slots:
            await self._create_and_start(pod, container, config, image)

    async def _create_and_start(self, pod: Obj, container: Obj, config: ContainerConfig,
                                image: Image) -> None:  # fmt: skip
        name, attempt = config.name, config.attempt
        runtime = self.agent.runtime
        sandbox = self.agent.sandbox_of(self.uid)
        assert sandbox is not None
        try:
            container_id = await runtime.create_container(sandbox.id, config)
            self.agent.invalidate()
        except Exception as e:
            reason = "RunContainerError" if "exec" in str(e).lower() else "CreateContainerError"
            self._fail(name, reason, str(e))
            return
        await asyncio.to_thread(self.agent.images.hold, container_id, image)
        self._event("Normal", "Created", f"Created container {name}")
        try:
            await runtime.start_container(container_id)
            self.agent.invalidate()
        except Exception as e:
            self._fail(name, "RunContainerError", str(e))
            with contextlib.suppress(Exception):
                await runtime.remove_container(container_id)
                self.agent.invalidate()
            await asyncio.to_thread(self.agent.images.release, container_id)
            return
        self.failures.pop(name, None)
        self.waiting.pop(name, None)
        self._event("Normal", "Started", f"Started container {name}")
        await self._prune(sandbox, name, attempt)

    async def _prune(self, sandbox: Sandbox, name: str, attempt: int) -> None:
        for c in await self.agent.containers(sandbox.id):
            if c.name == name and c.attempt < attempt - 1:
                await self.agent.runtime.remove_container(c.id)
                self.agent.invalidate()
                await asyncio.to_thread(self.agent.images.release, c.id)

    async def _image(self, container: Obj) -> Image | None:
        name, ref = container["name"], str(container["image"])
        policy = container.get("imagePullPolicy", "IfNotPresent")
        try:
            image, pulled = await self.agent.puller.ensure(ref, policy)
        except ImageNotFoundError as error:
            if policy == "Never":
                message = (f'Container image "{ref}" is not present with pull policy of Never')
                self._fail(name, "ErrImageNeverPull", message, "ErrImageNeverPull")
                return None
            self._pull_failed(name, ref, str(error))
            return None
        except (RegistryError, aiohttp.ClientError, OSError, ValueError) as error:
            self._pull_failed(name, ref, str(error))
            return None
        if pulled:
            self._event("Normal", "Pulled", f'Successfully pulled image "{ref}"')
        elif self.images.get(name) is None or self.images[name].id != image.id:
            self._event("Normal", "Pulled",
                        f'Container image "{ref}" already present on machine')
        self.images[name] = image
        return image

    def _pull_failed(self, name: str, ref: str, why: str) -> None:
        count, _ = self.failures.get(name, (0, 0.0))
        message = f'Failed to pull image "{ref}": {why}'
        self._fail(name, "ErrImagePull" if count == 0 else "ImagePullBackOff", message)

    def _image_id(self, image: Image) -> str:
        ref = image.reference
        repo = ref.split("@", 1)[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        return f"{repo}@{image.manifest_digest}"

    # -- probes -------------------------------------------------------------------------

    async def _ensure_probers(self, pod: Obj, container: Obj, status: ContainerStatus,
                              sandbox: Sandbox) -> None:  # fmt: skip
        for kind in ("startup", "liveness", "readiness"):
            probe = container.get(f"{kind}Probe")
            key = (status.id, kind)
            if probe and key not in self.probers:
                startup_key = (status.id, "startup")

                def gate(kind: str = kind, startup_key: tuple[str, str] = startup_key) -> bool:
                    startup = self.probers.get(startup_key)
                    return kind == "startup" or startup is None or startup.state.result is True

                self.probers[key] = Prober(
                    kind, probe, container, sandbox.ip, self.agent.runtime, status.id,
                    status.started_at or time.time(), self._probe_changed, gate,
                )  # fmt: skip
        stale = [k for k in self.probers
                 if k[0] != status.id and self._owner(k) == container["name"]]  # fmt: skip
        for key in stale:
            await self.probers.pop(key).stop()

    def _owner(self, key: tuple[str, str]) -> str:
        return str(self.probers[key].container.get("name"))

    async def _probe_changed(self, state: ProbeState, message: str) -> None:
        if message:
            kind = state.kind.capitalize()
            self._event("Warning", "Unhealthy", f"{kind} probe failed: {message}")
            return
        self.wake.set()

    def _probe_result(self, container_id: str, kind: str) -> bool | None:
        prober = self.probers.get((container_id, kind))
        return None if prober is None else prober.state.result

    async def _kill_if_unhealthy(self, pod: Obj, container: Obj, status: ContainerStatus) -> None:
        for kind in ("liveness", "startup"):
            if self._probe_result(status.id, kind) is False:
                name = container["name"]
                self._event("Normal", "Killing", f"Container {name} failed {kind} probe, will "
                            "be restarted")  # fmt: skip
                for key in [k for k in self.probers if k[0] == status.id]:
                    await self.probers.pop(key).stop()
                grace = float(container.get(f"{kind}Probe", {}).get(
                    "terminationGracePeriodSeconds",
                    pod["spec"].get("terminationGracePeriodSeconds", 30)))
                await self.agent.runtime.stop_container(status.id, grace)
                self.agent.invalidate()
                self.wake.set()
                return

    async def _restart_changed(self, pod: Obj, container: Obj, status: ContainerStatus) -> None:
        """Stop a container whose image the pod's spec changed; the next sync starts it anew."""
        name = container["name"]
        self._event("Normal", "Killing", f"Container {name} definition changed, will be restarted")
        await self._stop_probers(status.id)
        grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        await self.agent.runtime.stop_container(status.id, grace)
        self.agent.invalidate()
        self.reset_attempt[name] = status.attempt + 1  # a spec change is not a crash: no back-off
        self.wake.set()

    async def _stop_probers(self, container_id: str | None = None) -> None:
        for key in [k for k in self.probers if container_id in (None, k[0])]:
            await self.probers.pop(key).stop()

    # -- status -------------------------------------------------------------------------

    def container_status(self, container: Obj, attempts: list[ContainerStatus]) -> Obj:
        """Return one containerStatuses entry in Kubernetes' shape."""
        name = container["name"]
        latest = attempts[-1] if attempts else None
        previous = attempts[-2] if len(attempts) > 1 else None
        image = self.images.get(name)
        out: Obj = {"name": name, "image": str(container.get("image")),
                    "imageID": "", "ready": False, "restartCount": 0, "started": False,
                    "state": {}, "lastState": {}}  # fmt: skip
        if latest is not None:
            out["restartCount"] = latest.attempt
            out["containerID"] = f"runc://{latest.id}"
            out["imageID"] = latest.annotations.get("io.dockyard.image.id", "")
        elif image is not None:
            out["imageID"] = self._image_id(image)
        waiting = self.waiting.get(name)
        if latest is not None and latest.state == "running":
            out["state"] = {"running": {"startedAt": rfc3339(latest.started_at)}}
            started = self._probe_result(latest.id, "startup") is not False and (
                "startupProbe" not in container or self._probe_result(latest.id, "startup"))
            out["started"] = bool(started)
            ready = self._probe_result(latest.id, "readiness")
            out["ready"] = bool(started) and (ready is True or (
                ready is None and "readinessProbe" not in container))
            if previous is not None and previous.state == "exited":
                out["lastState"] = {"terminated": _terminated(previous)}
        elif latest is not None and latest.state == "exited" and waiting is None:
            out["state"] = {"terminated": _terminated(latest)}
            if previous is not None and previous.state == "exited":
                out["lastState"] = {"terminated": _terminated(previous)}
        else:
            reason, message = waiting or ("ContainerCreating", "")
            if latest is not None and latest.state == "unknown":
                reason, message = "ContainerStatusUnknown", latest.message
            waiting_state = {"reason": reason, "message": message} if message \
                else {"reason": reason}
            out["state"] = {"waiting": waiting_state}
            if latest is not None and latest.state == "exited":
                out["lastState"] = {"terminated": _terminated(latest)}
        return out

    def build_status(self, pod: Obj, sandbox: Sandbox | None,
                     statuses: dict[str, list[ContainerStatus]]) -> Obj:  # fmt: skip
        """Return the pod's status as Kubernetes reports it."""
        current = pod.get("status") or {}
        spec = pod["spec"]
        init = [self.container_status(c, statuses.get(c["name"]) or [])
                for c in spec.get("initContainers") or []]  # fmt: skip
        main = [self.container_status(c, statuses.get(c["name"]) or [])
                for c in spec.get("containers") or []]  # fmt: skip
        phase = podspec.pod_phase(pod, init, main)
        now = rfc3339(time.time()) or ""
        conditions = copy.deepcopy(current.get("conditions") or [])
        podspec.set_condition(conditions, "PodScheduled", True, now)
        if sandbox is not None:
            podspec.set_condition(conditions, "PodReadyToStartContainers", True, now)
        pending_init = [s["name"] for s in init
                        if (s["state"].get("terminated") or {}).get("exitCode") != 0]  # fmt: skip
        podspec.set_condition(conditions, "Initialized", not pending_init, now,
                              *(("ContainersNotInitialized", "containers with incomplete status:"
                                 f" [{' '.join(pending_init)}]") if pending_init else ()))
        unready = [s["name"] for s in main if not s["ready"]]
        if phase == "Succeeded" or (phase == "Failed" and not any(
                "running" in s["state"] for s in main)):
            reason = ("PodCompleted", "") if phase == "Succeeded" else ("PodFailed", "")
            for kind in ("ContainersReady", "Ready"):
                podspec.set_condition(conditions, kind, False, now, *reason)
        else:
            why = ("ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
            for kind in ("ContainersReady", "Ready"):
                podspec.set_condition(conditions, kind, not unready, now,
                                      *(why if unready else ()))  # fmt: skip
        order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                 "PodScheduled"]  # fmt: skip
        conditions.sort(key=lambda c: order.index(c["type"]) if c["type"] in order else 99)
        status: Obj = {
            "phase": phase, "conditions": conditions, "hostIP": self.agent.node_ip,
            "hostIPs": [{"ip": self.agent.node_ip}],
            "startTime": current.get("startTime") or now,
            "containerStatuses": main, "qosClass": current.get("qosClass"),
        }  # fmt: skip
        if init:
            status["initContainerStatuses"] = init
        if sandbox is not None:
            status["podIP"] = sandbox.ip
            status["podIPs"] = [{"ip": sandbox.ip}]
        return {k: v for k, v in status.items() if v is not None}

    async def _write_status(self, pod: Obj, sandbox: Sandbox | None,
                            statuses: dict[str, list[ContainerStatus]]) -> None:  # fmt: skip
        status = self.build_status(pod, sandbox, statuses)
        current = pod.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        patch: Obj = {"status": dict(status)}
        for key in ("message", "reason", "nominatedNodeName"):
            if key in current and key not in status and key != "nominatedNodeName":
                patch["status"][key] = None
        pods = self.agent.api.resource("v1", "pods", pod["metadata"].get("namespace"))
        try:
            updated = await pods.patch(pod["metadata"]["name"], patch, subresource="status",
                                       field_manager="dockyard-agent")  # fmt: skip
        except NotFoundError:
            return
        except ApiError as e:
            log.warning("pod %s: status not written: %s", self.name, e)
            self.schedule(1.0)
            return
        if self.pod is not None and self.pod["metadata"].get("uid") == self.uid:
            self.pod = updated  # the informer will bring the same; avoids a stale compare
            self.last_pod = updated

    # -- termination --------------------------------------------------------------------

    async def _stop_running(self, statuses: dict[str, list[ContainerStatus]], reason: str) -> None:
        for attempts in statuses.values():
            for c in attempts:
                if c.state in ("running", "created"):
                    await self._stop_probers(c.id)
                    await self.agent.runtime.stop_container(c.id, 10.0)
                    self.agent.invalidate()

    async def terminate(self) -> None:
        """Run preStop hooks, stop every container within the grace period, remove the pod."""
        pod = self.last_pod
        await self._stop_probers()
        sandbox = self.agent.sandbox_of(self.uid)
        grace = 2.0
        if pod is not None:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            grace = float(meta.get("deletionGracePeriodSeconds",
                                   spec.get("terminationGracePeriodSeconds", 30)))
        if sandbox is not None:
            deadline = time.monotonic() + grace
            statuses = await self._containers(sandbox)
            running = [attempts[-1] for attempts in statuses.values()
                       if attempts and attempts[-1].state in ("running", "created")]  # fmt: skip
            await asyncio.gather(*(self._kill(pod, c, sandbox, deadline) for c in running))
            for attempts in statuses.values():
                for c in attempts:
                    await asyncio.to_thread(self.agent.images.release, c.id)
            await self.agent.runtime.remove_sandbox(sandbox.id)
            self.agent.invalidate()
            self.agent.sandbox_removed(sandbox)
        await asyncio.to_thread(self.agent.remove_pod_files, self.uid)
        if self.pod is not None:
            await self._delete_object(self.pod)

    async def _kill(self, pod: Obj | None, c: ContainerStatus, sandbox: Sandbox,
                    deadline: float) -> None:  # fmt: skip
        spec = (pod or {}).get("spec") or {}
        container = next((x for x in podspec.all_containers(pod or {}) if x.get("name") == c.name),
                         {})  # fmt: skip
        pre_stop = (container.get("lifecycle") or {}).get("preStop")
        if pre_stop and c.state == "running":
            remaining = deadline - time.monotonic()
            handler = {**pre_stop, "timeoutSeconds": max(1, int(remaining))}
            with contextlib.suppress(TimeoutError):
                ok, message = await asyncio.wait_for(
                    run_probe(handler, container, sandbox.ip, self.agent.runtime, c.id),
                    max(0.1, remaining))  # fmt: skip
                if not ok:
                    self._event("Warning", "FailedPreStopHook",
                                f"PreStopHook failed: {message}", pod)
        self._event("Normal", "Killing", f"Stopping container {c.name}", pod)
        del spec
        await self.agent.runtime.stop_container(c.id, max(0.0, deadline - time.monotonic()))
        self.agent.invalidate()

    async def _delete_object(self, pod: Obj) -> None:
        meta = pod["metadata"]
        pods = self.agent.api.resource("v1", "pods", meta.get("namespace"))
        with contextlib.suppress(NotFoundError):
            try:
                await pods.delete(meta["name"], grace_period_seconds=0,
                                  preconditions={"uid": self.uid})
            except ApiError as e:
                if e.status != 409:  # another pod of that name now: ours is gone
                    raise

    # -- events -------------------------------------------------------------------------

    def _event(self, kind: str, reason: str, message: str, pod: Obj | None = None) -> None:
        target = pod or self.last_pod
        if target is not None:
            self.agent.events.event(target, kind, reason, message)


def _terminated(c: ContainerStatus) -> Obj:
    out: Obj = {"exitCode": c.exit_code if c.exit_code is not None else 255,
                "reason": c.reason or "Unknown", "startedAt": rfc3339(c.started_at),
                "finishedAt": rfc3339(c.finished_at), "containerID": f"runc://{c.id}"}  # fmt: skip
    if c.message:
        out["message"] = c.message
    return out


def pod_dns(pod: Obj, cluster_dns: str, domain: str) -> tuple[list[str], list[str], list[str]]:
    """Return a pod's resolv.conf (nameservers, searches, options) for its dnsPolicy."""
    spec = pod.get("spec") or {}
    config = spec.get("dnsConfig") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"  # the kubelet does the same for host-network pods
    servers = list(config.get("nameservers") or [])
    searches = list(config.get("searches") or [])
    options = [f"{o['name']}:{o['value']}" if o.get("value") else str(o.get("name"))
               for o in config.get("options") or [] if isinstance(o, dict) and o.get("name")]
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and cluster_dns:
        namespace = (pod.get("metadata") or {}).get("namespace", "default")
        servers = [cluster_dns, *servers]
        searches = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain, *searches]
        if not any(o.startswith("ndots") for o in options):
            options = ["ndots:5", *options]  # a dnsConfig ndots overrides it, as the kubelet
    return servers, searches, options
