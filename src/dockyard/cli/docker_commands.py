"""Docker-style verbs on the cluster: run, ps, logs, exec, attach, stop, start, restart, rm, stats.

A "container" here is a Pod (one container, named like the pod) that `dockyard run` made, or
any pod a person names; `run --replicas N` makes a Deployment and, with -p, a Service instead.
How Docker's ideas map onto the Kubernetes API (all standard calls):
- `-p HOST:CONTAINER` → the container port with ``hostPort`` (with --replicas: a Service
  port HOST → targetPort CONTAINER, since replicas cannot share one host port);
- `-e`, `--cpus`, `--memory` → env and resources.limits (Docker's memory units b/k/m/g are
  binary: 512m = 512Mi); `-v HOST:CTR[:ro]` → a hostPath volume, `-v NAME:CTR` → emptyDir;
- `--restart no|always|on-failure|unless-stopped` → restartPolicy Never|Always|OnFailure|Always;
- `run -i` / `-t` → the container's ``stdin`` (with ``stdinOnce``, as `kubectl run -i`) and
  ``tty``; without -d, `run` then attaches (pods/attach) once the pod runs. With -t the
  terminal goes both ways through the attach, as `kubectl run -it`: what the container printed
  before the attach is not shown. With -i alone stdin goes through the attach and the output
  comes from the followed log, which has all of it (stdout and stderr merged, as plain `run`);
  `run -it` leaves out ``stdinOnce`` (as Docker keeps a terminal's stdin open), so a detach
  (Ctrl-P Ctrl-Q, `--detach-keys`) leaves the shell running for `dockyard attach`;
- a stopped container: Kubernetes has no stopped pods, so `stop` deletes the pod and keeps its
  manifest in a ConfigMap ``dockyard-stopped-NAME`` (label ``dockyard.io/stopped``) that
  `start` re-creates it from and `ps -a` lists as Exited; `stop` on a Deployment scales it to 0
  and remembers the replicas in an annotation.

Exit codes as Docker's: 125 when dockyard or the cluster fails (no server, no such container,
image not found); `run` without -d exits with the container's exit code; `exec` with the
command's (126/127 when it cannot be run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer

from dockyard.cli.detach_keys import DEFAULT_DETACH_KEYS, DETACHED_MESSAGE, parse_detach_keys
from dockyard.cli.exec_stream import Detached, attach_to_pod, exec_in_pod
from dockyard.cli.kube_commands import pod_metrics, pod_usage
from dockyard.cli.kubeargs import (
    DOCKER_ERROR,
    CliError,
    Kube,
    kube_flags,
    parse_duration,
    resource,
    run_on_api,
)
from dockyard.cli.printers import aligned, dump, echo
from dockyard.cli.rollout import restart_patch
from dockyard.cli.waiting import wait_for_object, wait_gone
from dockyard.client import AlreadyExistsError, ApiClient, NotFoundError, ResourceClient
from dockyard.objects.meta import human_duration, parse_time
from dockyard.objects.quantity import to_int

T = TypeVar("T")
Obj = dict[str, Any]
MANAGED_BY = "app.kubernetes.io/managed-by"
RUN_LABEL = "run"
STOPPED_LABEL = "dockyard.io/stopped"
STOPPED_PREFIX = "dockyard-stopped-"
REPLICAS_BEFORE_STOP = "dockyard.io/replicas-before-stop"
IMAGE_ERRORS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")
START_ERRORS = ("CreateContainerError", "CreateContainerConfigError", "RunContainerError")
RESTART_POLICIES = {"no": "Never", "always": "Always", "on-failure": "OnFailure",
                    "unless-stopped": "Always"}
_NAME_RE = re.compile(r"[^a-z0-9-]+")

DockerOutput = typer.Option("", "--format", "-o", help="json or yaml instead of a table.")
DetachKeysOption = typer.Option(DEFAULT_DETACH_KEYS, "--detach-keys",
                                help='Keys that detach a terminal session ("": none).')


def _on_api(kube: Kube, work: Callable[[ApiClient, str], Coroutine[Any, Any, T]]) -> T:
    """Run a docker-style verb's work(api, namespace): errors exit 125, as Docker's."""
    return run_on_api(kube, work, DOCKER_ERROR)


# -- run ------------------------------------------------------------------------------------


@dataclass
class RunSpec:
    """What `dockyard run` was asked for, parsed and checked."""

    image: str
    command: list[str]
    name: str
    detach: bool = False
    ports: list[tuple[int, int, str]] = field(default_factory=list)
    env: list[tuple[str, str]] = field(default_factory=list)
    volumes: list[tuple[str, str, bool]] = field(default_factory=list)
    remove: bool = False
    cpus: str = ""
    memory: str = ""
    restart: str = "Never"
    replicas: int = 0
    interactive: bool = False
    tty: bool = False
    detach_keys: bytes = b"\x10\x11"


@kube_flags()
def run_command(
    kube: Kube,
    image: str = typer.Argument(..., help="Image to run."),
    command: list[str] = typer.Argument(None, help="Command and arguments (default: image's)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background."),
    publish: list[str] = typer.Option([], "--publish", "-p", help="HOST:CONTAINER[/proto]."),
    env: list[str] = typer.Option([], "--env", "-e", help="KEY=VALUE (KEY: from here)."),
    volume: list[str] = typer.Option([], "--volume", "-v", help="HOST_DIR:PATH[:ro]."),
    name: str = typer.Option("", "--name", help="Name (default: made from the image)."),
    remove: bool = typer.Option(False, "--rm", help="Remove it when it exits."),
    cpus: str = typer.Option("", "--cpus", help="CPU limit, e.g. 0.5."),
    memory: str = typer.Option("", "--memory", "-m", help="Memory limit, e.g. 256m."),
    restart: str = typer.Option("no", "--restart", help="no, always, on-failure, "
                                "unless-stopped."),
    replicas: int = typer.Option(0, "--replicas", help="Run N copies: a Deployment+Service."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Keep stdin open."),
    tty: bool = typer.Option(False, "--tty", "-t", help="Allocate a terminal."),
    timeout: float = typer.Option(120.0, "--timeout", parser=parse_duration,
                                  help="Seconds to wait for the start "
                                  "(0: do not wait with -d)."),
    detach_keys: str = DetachKeysOption,
) -> None:
    """Run a container on the cluster (a Pod; with --replicas a Deployment and Service)."""
    with _usage_errors():
        spec = parse_run(image, command or [], detach, publish, env, volume, name, remove, cpus,
                         memory, restart, replicas, interactive, tty, detach_keys)
    with _usage_errors():
        if interactive and tty and not detach:
            _check_terminal()
    code = _on_api(kube, lambda api, ns: _run(api, ns, spec, timeout))
    raise typer.Exit(code)


def _check_terminal() -> None:
    """Refuse -it when stdin is not a terminal (Docker's message): raw mode needs one."""
    if not sys.stdin.isatty():
        raise CliError("the input device is not a TTY: drop -t to pipe stdin (run -i)")


@contextlib.contextmanager
def _usage_errors() -> Any:
    try:
        yield
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(DOCKER_ERROR) from None


def parse_run(image: str, command: list[str], detach: bool, publish: list[str], env: list[str],
              volume: list[str], name: str, remove: bool, cpus: str, memory: str,
              restart: str, replicas: int, interactive: bool, tty: bool,
              detach_keys: str = DEFAULT_DETACH_KEYS) -> RunSpec:  # fmt: skip
    """Check and translate `run` flags (CliError names the bad flag)."""
    policy_word = restart.split(":")[0]
    if policy_word not in RESTART_POLICIES:
        raise CliError(f"invalid restart policy {restart!r}: use no, always, on-failure or "
                       "unless-stopped")
    if remove and detach and policy_word != "no":
        raise CliError("conflicting options: --restart and --rm")
    if replicas < 0:
        raise CliError("--replicas must be 1 or more")
    if (interactive or tty) and replicas:
        raise CliError("-i and -t attach to one container: they do not go with --replicas")
    return RunSpec(
        image=image, command=command, name=name or default_name(image), detach=detach,
        ports=[parse_port(p) for p in publish], env=[parse_env(e) for e in env],
        volumes=[parse_volume(v) for v in volume], remove=remove, cpus=parse_cpus(cpus),
        memory=docker_memory(memory), restart=RESTART_POLICIES[policy_word], replicas=replicas,
        interactive=interactive, tty=tty, detach_keys=parse_detach_keys(detach_keys),
    )


def default_name(image: str) -> str:
    """Make a pod name from an image: "library/nginx:1.25" → "nginx-3f9a1c"."""
    base = image.split("@")[0].rsplit("/", 1)[-1].split(":")[0].lower()
    base = _NAME_RE.sub("-", base).strip("-")[:40] or "container"
    return f"{base}-{secrets.token_hex(3)}"


def parse_port(text: str) -> tuple[int, int, str]:
    """Parse -p HOST:CONTAINER[/tcp|udp] (or CONTAINER alone: same number on the host)."""
    spec, _, proto = text.partition("/")
    proto = (proto or "tcp").upper()
    parts = spec.split(":")
    if proto not in ("TCP", "UDP", "SCTP") or len(parts) > 3:
        raise CliError(f"invalid -p {text!r}: use HOST:CONTAINER[/tcp|udp]")
    host, container = (parts[-2], parts[-1]) if len(parts) >= 2 else (parts[0], parts[0])
    try:
        host_port, container_port = int(host), int(container)
    except ValueError:
        raise CliError(f"invalid -p {text!r}: ports must be numbers") from None
    if not (0 < host_port < 65536 and 0 < container_port < 65536):
        raise CliError(f"invalid -p {text!r}: ports are 1-65535")
    return host_port, container_port, proto


def parse_env(text: str) -> tuple[str, str]:
    """Parse -e KEY=VALUE; a bare KEY takes its value from this environment (as Docker)."""
    key, sep, value = text.partition("=")
    if not key:
        raise CliError(f"invalid -e {text!r}: use KEY=VALUE")
    return key, value if sep else os.environ.get(key, "")


def parse_volume(text: str) -> tuple[str, str, bool]:
    """Parse -v SOURCE:PATH[:ro|rw] (SOURCE: an absolute host dir, or a name for emptyDir)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[1].startswith("/"):
        raise CliError(f"invalid -v {text!r}: use HOST_DIR:/path[:ro] or NAME:/path")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise CliError(f"invalid -v {text!r}: the mode is ro or rw")
    return parts[0], parts[1], mode == "ro"


def parse_cpus(text: str) -> str:
    """Turn --cpus 0.5 into a Kubernetes quantity ("500m")."""
    if not text:
        return ""
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"invalid --cpus {text!r}: give a number like 0.5 or 2") from None
    if value <= 0:
        raise CliError("--cpus must be more than 0")
    return f"{round(value * 1000)}m"


def docker_memory(text: str) -> str:
    """Turn Docker's --memory (binary units b/k/m/g) into a quantity: "512m" → "512Mi"."""
    if not text:
        return ""
    match = re.fullmatch(r"(\d+)([bkmgBKMG]?)", text.strip())
    if not match:
        raise CliError(f"invalid --memory {text!r}: use a number with b, k, m or g (e.g. 256m)")
    number, unit = match.group(1), match.group(2).lower()
    return number + {"": "", "b": "", "k": "Ki", "m": "Mi", "g": "Gi"}[unit]


def pod_template(spec: RunSpec, host_ports: bool) -> Obj:
    """Build the pod spec (and labels) `run` creates."""
    container: Obj = {"name": spec.name if not spec.replicas else "main", "image": spec.image}
    if spec.command:
        container["command"] = spec.command
    if spec.env:
        container["env"] = [{"name": k, "value": v} for k, v in spec.env]
    if spec.ports:
        container["ports"] = [
            {"containerPort": c, "protocol": p, **({"hostPort": h} if host_ports else {})}
            for h, c, p in spec.ports]
    limits = {k: v for k, v in (("cpu", spec.cpus), ("memory", spec.memory)) if v}
    if limits:
        container["resources"] = {"limits": limits}
    if spec.interactive:
        container["stdin"] = True
        if not spec.detach and not spec.tty:  # the attach `run -i` makes is the only one
            container["stdinOnce"] = True  # a terminal's stays open: one can detach and return
    if spec.tty:
        container["tty"] = True
    volumes, mounts = _volumes(spec.volumes)
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec: Obj = {"containers": [container]}
    if volumes:
        pod_spec["volumes"] = volumes
    return pod_spec


def _volumes(specs: list[tuple[str, str, bool]]) -> tuple[list[Obj], list[Obj]]:
    volumes, mounts = [], []
    for i, (source, path, read_only) in enumerate(specs):
        name = f"vol-{i}"
        if source.startswith("/"):
            volumes.append({"name": name, "hostPath": {"path": source}})
        else:
            volumes.append({"name": name, "emptyDir": {}})
        mounts.append({"name": name, "mountPath": path, **({"readOnly": True} if read_only
                                                           else {})})
    return volumes, mounts


def build_objects(spec: RunSpec, namespace: str) -> list[Obj]:
    """Return the objects `run` creates: one Pod, or a Deployment (and Service with -p)."""
    labels = {RUN_LABEL: spec.name, MANAGED_BY: "dockyard"}
    meta = {"name": spec.name, "namespace": namespace, "labels": labels}
    if not spec.replicas:
        pod_spec = pod_template(spec, host_ports=True)
        pod_spec["restartPolicy"] = spec.restart
        return [{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}]
    pod_spec = pod_template(spec, host_ports=False)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {"replicas": spec.replicas, "selector": {"matchLabels": {RUN_LABEL: spec.name}},
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
    }
    if not spec.ports:
        return [deployment]
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": meta,
        "spec": {"selector": {RUN_LABEL: spec.name},
                 "ports": [{"name": f"p{h}", "port": h, "targetPort": c, "protocol": p}
                           for h, c, p in spec.ports]},
    }
    return [deployment, service]


async def _run(api: ApiClient, ns: str, spec: RunSpec, timeout: float) -> int:
    for obj in build_objects(spec, ns):
        plural = {"Pod": "pods", "Deployment": "deployments", "Service": "services"}
        rc = api.resource(obj["apiVersion"], plural[obj["kind"]], ns)
        try:
            await rc.create(obj, field_manager="dockyard")
        except AlreadyExistsError:
            raise CliError(f'the name "{spec.name}" is already in use by a '
                           f"{obj['kind']}: remove it with `dockyard rm {spec.name}` or "
                           "choose another --name") from None
    if spec.replicas:
        echo(spec.name)
        return 0
    pods = api.resource("v1", "pods", ns)
    if spec.detach:
        if timeout > 0:
            await _wait_started(api, pods, spec, timeout)
        echo(spec.name)
        return 0
    return await _run_to_exit(api, pods, spec, timeout)


async def _wait_started(api: ApiClient, pods: ResourceClient, spec: RunSpec,
                        timeout: float) -> Obj:
    try:
        return await wait_for_object(pods, spec.name, _started, timeout,
                                     f"{spec.name} to start")
    except CliError as e:
        await _remove_pod(pods, spec.name)
        raise CliError(await _explain(e, spec.image)) from None


def _started(pod: Obj) -> bool:
    st = pod.get("status") or {}
    if st.get("phase") in ("Running", "Succeeded", "Failed"):
        return True
    for cs in st.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in IMAGE_ERRORS or reason in START_ERRORS:
            raise CliError(f"{reason}: {waiting.get('message', '')}".strip())
        if "running" in (cs.get("state") or {}) or "terminated" in (cs.get("state") or {}):
            return True
    return False


async def _explain(e: CliError, image: str) -> str:
    text = str(e)
    if any(text.startswith(r) for r in IMAGE_ERRORS):
        return image_not_found(image)
    return text


def image_not_found(image: str) -> str:
    """Say an image is missing, with a "did you mean" from the local image store if any."""
    from dockyard.images.store import ImageNotFoundError, ImageStore

    for data_dir in _image_store_dirs():
        try:
            ImageStore(data_dir).resolve(image)
        except ImageNotFoundError as missing:
            return f"{missing} (build it with `dockyard build -t {image} DIR` or pull it)"
        except (OSError, ValueError):
            continue  # not a readable store: try the next place
    return (f"image {image} not found on the node: build it with `dockyard build -t {image} "
            "DIR` or pull it with `dockyard pull`")


def _image_store_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("KUBECONFIG"):
        dirs.append(Path(os.environ["KUBECONFIG"].split(os.pathsep)[0]).parent)
    dirs.append(Path("/var/lib/dockyard"))
    return [d for d in dirs if (d / "images").is_dir()]


async def _remove_pod(pods: ResourceClient, name: str) -> None:
    """Delete a pod that could not start or ran with --rm (Docker leaves no container either)."""
    with contextlib.suppress(NotFoundError):
        await pods.delete(name, grace_period_seconds=0)


async def _run_to_exit(api: ApiClient, pods: ResourceClient, spec: RunSpec,
                       timeout: float) -> int:  # fmt: skip
    """Wait for the new pod to start, relay its streams, return its exit code (--rm: remove it).

    With -t the terminal goes through pods/attach, with -i stdin (the output from the log);
    plain `run` follows the log. A detach exits 0 and leaves the pod, even with --rm.
    """
    detached = False
    try:
        pod = await _wait_started(api, pods, spec, timeout)
        if spec.tty:
            await _attach_terminal(api, pods, spec, _running(pod))
        elif spec.interactive:
            await _attach_piped(api, pods, spec, _running(pod))
        else:
            await _print_chunks(pods.read_log(spec.name, follow=True))
        pod = await wait_for_object(pods, spec.name, _finished, 30.0,
                                    f"{spec.name} to report its exit code")
        return _exit_code(pod)
    except Detached:
        detached = True
        _say_detached(spec.name, spec.remove)
        return 0
    finally:
        if spec.remove and not detached:
            await _remove_pod(pods, spec.name)


def _say_detached(name: str, remove: bool) -> None:
    """Tell a person who typed the detach keys that the container still runs.

    Docker's daemon removes a detached `run --rm` container when it exits; no part of the
    cluster would do that for a pod, and `run` cannot stay behind to wait, so the pod stays.
    """
    print(DETACHED_MESSAGE, file=sys.stderr, flush=True)
    if remove:
        print(f"{name} keeps running and stays after it exits (--rm ends with the detach): "
              f"remove it with `dockyard rm -f {name}`", file=sys.stderr, flush=True)


async def _print_chunks(chunks: AsyncIterator[bytes]) -> None:
    """Write a followed log to stdout as it comes."""
    async for chunk in chunks:
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()


async def _attach_terminal(api: ApiClient, pods: ResourceClient, spec: RunSpec,
                           running: bool) -> None:  # fmt: skip
    """Relay the terminal both ways; a container that ended first has its log printed."""
    status: Obj = {}
    if running:
        status = await attach_to_pod(api, pods.namespace or "", spec.name, None,
                                     spec.interactive, True, detach_keys=spec.detach_keys)
    if status.get("status") != "Success":
        await _ended_before_attach(pods, spec.name, status)
        sys.stdout.write(await pods.read_log(spec.name))
        sys.stdout.flush()


async def _attach_piped(api: ApiClient, pods: ResourceClient, spec: RunSpec,
                        running: bool) -> None:  # fmt: skip
    """Send stdin through pods/attach; show the output from the log, which has all of it.

    Attached output would miss what the container printed before the attach (kubectl run -i
    loses it); the log is complete, and like `run` without -i it has stdout and stderr merged.
    """
    async def stdin_relay() -> None:
        status = await attach_to_pod(api, pods.namespace or "", spec.name, None, True, False,
                                     output=False)  # fmt: skip
        if status.get("status") != "Success":
            await _ended_before_attach(pods, spec.name, status)

    relay = asyncio.create_task(stdin_relay()) if running else None
    try:
        await _print_chunks(pods.read_log(spec.name, follow=True))
        if relay is not None:
            await relay
    finally:
        if relay is not None and not relay.done():
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay


async def _ended_before_attach(pods: ResourceClient, name: str, status: Obj) -> None:
    """Return if the container ended before the attach could start, else raise CliError."""
    try:  # its status may not say so yet
        await wait_for_object(pods, name, _finished, 3.0, "its exit")
    except CliError:
        raise CliError(f"cannot attach to {name}: {status.get('message') or status}") from None


def _running(pod: Obj) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any("running" in (cs.get("state") or {}) for cs in statuses)


def _finished(pod: Obj) -> bool:
    st = pod.get("status") or {}
    if st.get("phase") in ("Succeeded", "Failed"):
        return True
    return any("terminated" in (cs.get("state") or {}) for cs in st.get("containerStatuses")
               or [])


def _exit_code(pod: Obj) -> int:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated is not None:
            return int(terminated.get("exitCode", 0))
    return 0


# -- ps -------------------------------------------------------------------------------------


@kube_flags(all_namespaces=True)
def ps(
    kube: Kube,
    all_containers: bool = typer.Option(False, "--all", "-a", help="Also exited and stopped."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only names."),
    output: str = DockerOutput,
) -> None:
    """List containers (pods): running ones, or with -a all."""
    _on_api(kube, lambda api, ns: _ps(api, None if kube.all_namespaces else ns, all_containers,
                                      quiet, output))  # fmt: skip


async def _ps(api: ApiClient, scope: str | None, all_containers: bool, quiet: bool,
              output: str) -> None:  # fmt: skip
    pods = (await api.resource("v1", "pods", scope).list()).items
    stopped = []
    if all_containers:
        stopped = (await api.resource("v1", "configmaps", scope).list(
            f"{STOPPED_LABEL}=true")).items
    now = datetime.now(UTC)
    rows = [ps_row(p, now) for p in pods]
    rows += [_stopped_row(cm, now) for cm in stopped]
    if not all_containers:
        rows = [r for r in rows if r["running"]]
    if output:
        print(dump(rows, output))
    elif quiet:
        for r in rows:
            print(r["name"])
    else:
        headers = ["NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NODE"]
        print(aligned(headers, [[r["name"], r["image"], _short(r["command"]), r["created"],
                                 r["status"], r["ports"], r["node"]] for r in rows]))


def ps_row(pod: Obj, now: datetime) -> Obj:
    """Summarise a pod as a docker ps row (first container's image, command and state)."""
    meta, spec, st = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    containers = spec.get("containers") or [{}]
    first = containers[0]
    status, running = _docker_status(st, now)
    ports = [f"0.0.0.0:{p['hostPort']}->{p['containerPort']}/{p.get('protocol', 'TCP').lower()}"
             for c in containers for p in c.get("ports") or [] if p.get("hostPort")]
    return {
        "name": meta["name"], "namespace": meta.get("namespace", ""),
        "image": first.get("image", "") + (f" (+{len(containers) - 1})"
                                           if len(containers) > 1 else ""),
        "command": " ".join(first.get("command") or []) or "",
        "created": _ago(meta.get("creationTimestamp"), now), "status": status,
        "ports": ", ".join(ports), "node": spec.get("nodeName", ""), "running": running,
    }


def _docker_status(st: Obj, now: datetime) -> tuple[str, bool]:
    phase = st.get("phase", "Pending")
    for cs in st.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "running" in state:
            since_text = _ago(state["running"].get("startedAt"), now).replace(" ago", "")
            return f"Up {since_text}", True
        if "terminated" in state:
            t = state["terminated"]
            return f"Exited ({t.get('exitCode', 0)}) {_ago(t.get('finishedAt'), now)}", \
                phase not in ("Succeeded", "Failed")
        if "waiting" in state:
            return state["waiting"].get("reason", "Waiting"), True
    if phase in ("Succeeded", "Failed"):
        return f"Exited ({'0' if phase == 'Succeeded' else '1'})", False
    return "Created" if phase == "Pending" else phase, True


def _stopped_row(cm: Obj, now: datetime) -> Obj:
    pod = json.loads((cm.get("data") or {}).get("pod.json", "{}") or "{}")
    empty: Obj = {"name": "", "image": "", "command": "", "ports": "", "node": ""}
    row = ps_row(pod, now) if pod.get("metadata") else empty
    stopped_at = _ago(cm["metadata"].get("creationTimestamp"), now)
    row.update({"status": f"Exited (stopped) {stopped_at}", "running": False, "node": ""})
    return row


def _ago(value: Any, now: datetime) -> str:
    moment = parse_time(value)
    if moment is None:
        return ""
    return f"{human_duration((now - moment).total_seconds())} ago"


def _short(command: str) -> str:
    text = f'"{command}"' if command else ""
    return text if len(text) <= 22 else text[:20] + '…"'


# -- logs and exec --------------------------------------------------------------------------


@kube_flags()
def logs(
    kube: Kube,
    name: str = typer.Argument(..., help="Container (pod) name, or deployment/NAME."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new output."),
    tail: int = typer.Option(-1, "--tail", "-n", help="Only the last N lines."),
    timestamps: bool = typer.Option(False, "--timestamps", "-t", help="Show timestamps."),
    container: str = typer.Option("", "--container", "-c", help="Container in the pod."),
) -> None:
    """Print a container's log (pods/log)."""
    _on_api(kube, lambda api, ns: _logs(api, ns, name, follow, tail, timestamps, container))


async def _logs(api: ApiClient, ns: str, name: str, follow: bool, tail: int, timestamps: bool,
                container: str) -> None:
    pods = api.resource("v1", "pods", ns)
    pod = await _find_pod(api, ns, name)
    tail_lines = tail if tail >= 0 else None
    if follow:
        await _print_chunks(pods.read_log(pod, container or None, follow=True,
                                          tail_lines=tail_lines, timestamps=timestamps))
        return
    text = await pods.read_log(pod, container or None, tail_lines=tail_lines,
                               timestamps=timestamps)
    sys.stdout.write(text)
    sys.stdout.flush()


async def _find_pod(api: ApiClient, ns: str, name: str) -> str:
    """Return the pod behind a name: the pod itself, or the first pod of deployment/NAME."""
    kind, sep, rest = name.partition("/")
    pods = api.resource("v1", "pods", ns)
    if sep and kind not in ("pod", "pods", "po"):
        info = resource(kind)
        owner = await api.resource(info.api_version, info.plural, ns).get(rest)
        selector = ((owner.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        text = ",".join(f"{k}={v}" for k, v in selector.items())
        listed = await pods.list(text or None)
        if not listed.items:
            raise CliError(f"no pods found for {name}")
        return str(sorted(p["metadata"]["name"] for p in listed.items)[0])
    pod_name = rest if sep else name
    try:
        await pods.get(pod_name)
    except NotFoundError:
        raise CliError(f"No such container: {pod_name}") from None
    return pod_name


@kube_flags()
def exec_command(
    kube: Kube,
    name: str = typer.Argument(..., help="Container (pod) name."),
    command: list[str] = typer.Argument(..., help="Command and arguments."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Pass stdin."),
    tty: bool = typer.Option(False, "--tty", "-t", help="Allocate a terminal."),
    container: str = typer.Option("", "--container", "-c", help="Container in the pod."),
) -> None:
    """Run a command in a running container (pods/exec); exit with its exit code."""
    if command[:1] == ["--"]:  # kubectl's `exec POD -- CMD` form: the separator is not the command
        command = command[1:]
    code = _on_api(kube, lambda api, ns: _exec(api, ns, name, command, interactive, tty, container))
    raise typer.Exit(code)


async def _exec(api: ApiClient, ns: str, name: str, command: list[str], stdin: bool, tty: bool,
                container: str) -> int:
    pod = await _find_pod(api, ns, name)
    return await exec_in_pod(api, ns, pod, container or None, command, stdin, tty)


@kube_flags()
def attach(
    kube: Kube,
    name: str = typer.Argument(..., help="Container (pod) name."),
    no_stdin: bool = typer.Option(False, "--no-stdin", help="Do not pass stdin."),
    container: str = typer.Option("", "--container", "-c", help="Container in the pod."),
    detach_keys: str = DetachKeysOption,
) -> None:
    """Attach to a running container's stdio (pods/attach); exit with its exit code."""
    with _usage_errors():
        keys = parse_detach_keys(detach_keys)
    code = _on_api(kube, lambda api, ns: _attach(api, ns, name, container, no_stdin, keys))
    raise typer.Exit(code)


async def _attach(api: ApiClient, ns: str, name: str, container: str, no_stdin: bool,
                  detach_keys: bytes) -> int:  # fmt: skip
    pods = api.resource("v1", "pods", ns)
    pod_name = await _find_pod(api, ns, name)
    pod = await pods.get(pod_name)
    spec = _container_spec(pod, container)
    if not _running(pod):
        raise CliError(f"cannot attach to {pod_name}: its container is not running")
    # as Docker: stdin and the terminal are what the container was created with
    stdin, tty = bool(spec.get("stdin")) and not no_stdin, bool(spec.get("tty"))
    if stdin and tty:
        _check_terminal()
    try:
        status = await attach_to_pod(api, ns, pod_name, spec["name"], stdin, tty,
                                     detach_keys=detach_keys)
    except Detached:
        _say_detached(pod_name, False)
        return 0
    if status.get("status") != "Success":
        raise CliError(f"cannot attach to {pod_name}: {status.get('message') or status}")
    with contextlib.suppress(CliError):  # still running: we detached, exit 0 as Docker
        pod = await wait_for_object(pods, pod_name, _finished, 5.0, "its exit code")
        return _exit_code(pod)
    return 0


def _container_spec(pod: Obj, container: str) -> Obj:
    containers: list[Obj] = (pod.get("spec") or {}).get("containers") or []
    for c in containers:
        if c["name"] == container or not container:
            return c
    names = " ".join(c["name"] for c in containers)
    raise CliError(f"container {container} is not valid for pod {pod['metadata']['name']}: "
                   f"choose one of: [{names}]")


# -- stop / start / restart / rm ------------------------------------------------------------

NamesArg = typer.Argument(..., help="Container (pod) or `run --replicas` names.")


@kube_flags()
def stop(
    kube: Kube,
    names: list[str] = NamesArg,
    time_seconds: int = typer.Option(10, "--time", "-t", help="Seconds before killing."),
) -> None:
    """Stop containers: keep their definition, delete the running pod."""
    _each(kube, names, lambda api, ns, n: _stop(api, ns, n, time_seconds))


def _each(kube: Kube, names: list[str], action: Any) -> None:
    """Run action(api, namespace, name) for each name in turn, printing each name done."""

    async def every(api: ApiClient, ns: str) -> None:
        for name in names:
            await action(api, ns, name)
            echo(name)

    _on_api(kube, every)


async def _stop(api: ApiClient, ns: str, name: str, grace: int) -> None:
    deployment = await _deployment_or_none(api, ns, name)
    if deployment is not None:
        replicas = int((deployment.get("spec") or {}).get("replicas", 1))
        if replicas:
            patch = {"metadata": {"annotations": {REPLICAS_BEFORE_STOP: str(replicas)}}}
            await api.resource("apps/v1", "deployments", ns).patch(name, patch, "merge")
            await api.resource("apps/v1", "deployments", ns).patch(
                name, {"spec": {"replicas": 0}}, "merge", subresource="scale")
        return
    pods = api.resource("v1", "pods", ns)
    try:
        pod = await pods.get(name)
    except NotFoundError:
        if await _stopped_manifest(api, ns, name) is not None:
            return  # already stopped: docker stop is idempotent
        raise CliError(f"No such container: {name}") from None
    await _save_stopped(api, ns, pod)
    await pods.delete(name, grace_period_seconds=grace)
    await wait_gone(pods, name, grace + 60.0)


async def _deployment_or_none(api: ApiClient, ns: str, name: str) -> Obj | None:
    try:
        obj: Obj = await api.resource("apps/v1", "deployments", ns).get(name)
    except NotFoundError:
        return None
    if (obj["metadata"].get("labels") or {}).get(MANAGED_BY) != "dockyard":
        return None
    return obj


async def _save_stopped(api: ApiClient, ns: str, pod: Obj) -> None:
    meta = pod["metadata"]
    keep = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations")
                         if k in meta},
            "spec": {k: v for k, v in (pod.get("spec") or {}).items() if k != "nodeName"}}
    cm: Obj = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": STOPPED_PREFIX + meta["name"], "namespace": ns,
                       "labels": {STOPPED_LABEL: "true", MANAGED_BY: "dockyard"}},
          "data": {"pod.json": json.dumps(keep)}}
    configmaps = api.resource("v1", "configmaps", ns)
    try:
        await configmaps.create(cm, field_manager="dockyard")
    except AlreadyExistsError:
        current = await configmaps.get(cm["metadata"]["name"])
        cm["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await configmaps.update(cm)


async def _stopped_manifest(api: ApiClient, ns: str, name: str) -> Obj | None:
    try:
        cm: Obj = await api.resource("v1", "configmaps", ns).get(STOPPED_PREFIX + name)
    except NotFoundError:
        return None
    pod: Obj = json.loads((cm.get("data") or {}).get("pod.json", "{}"))
    return pod


@kube_flags()
def start(
    kube: Kube,
    names: list[str] = NamesArg,
) -> None:
    """Start stopped containers again."""
    _each(kube, names, _start)


async def _start(api: ApiClient, ns: str, name: str) -> None:
    deployment = await _deployment_or_none(api, ns, name)
    if deployment is not None:
        before = (deployment["metadata"].get("annotations") or {}).get(REPLICAS_BEFORE_STOP)
        if before and not (deployment.get("spec") or {}).get("replicas"):
            await api.resource("apps/v1", "deployments", ns).patch(
                name, {"spec": {"replicas": int(before)}}, "merge", subresource="scale")
        return
    pod = await _stopped_manifest(api, ns, name)
    if pod is None:
        try:
            await api.resource("v1", "pods", ns).get(name)
            return  # running already: docker start is a no-op then
        except NotFoundError:
            raise CliError(f"No such container: {name}") from None
    await api.resource("v1", "pods", ns).create(pod, field_manager="dockyard")
    with contextlib.suppress(NotFoundError):
        await api.resource("v1", "configmaps", ns).delete(STOPPED_PREFIX + name)


@kube_flags()
def restart(
    kube: Kube,
    names: list[str] = NamesArg,
    time_seconds: int = typer.Option(10, "--time", "-t", help="Seconds before killing."),
) -> None:
    """Restart containers (a Deployment made by `run --replicas` rolls its pods)."""

    async def again(api: ApiClient, ns: str, name: str) -> None:
        deployment = await _deployment_or_none(api, ns, name)
        if deployment is not None:
            await api.resource("apps/v1", "deployments", ns).patch(name, restart_patch(),
                                                                   "strategic")
            return
        await _stop(api, ns, name, time_seconds)
        await _start(api, ns, name)

    _each(kube, names, again)


@kube_flags()
def rm(
    kube: Kube,
    names: list[str] = NamesArg,
    force: bool = typer.Option(False, "--force", "-f", help="Remove running ones too."),
) -> None:
    """Remove containers (running ones only with -f)."""
    _each(kube, names, lambda api, ns, n: _rm(api, ns, n, force))


async def _rm(api: ApiClient, ns: str, name: str, force: bool) -> None:
    found = False
    if await _deployment_or_none(api, ns, name) is not None:
        if not force:
            raise CliError(f"cannot remove {name}: it is running (a Deployment) — stop it "
                           "first or use --force")
        await api.resource("apps/v1", "deployments", ns).delete(name, "Background")
        with contextlib.suppress(NotFoundError):
            await api.resource("v1", "services", ns).delete(name)
        return
    pods = api.resource("v1", "pods", ns)
    try:
        pod = await pods.get(name)
        found = True
        _, running = _docker_status(pod.get("status") or {}, datetime.now(UTC))
        if running and not force:
            raise CliError(f"cannot remove container {name}: container is running: stop the "
                           "container before removing or force remove")
        await pods.delete(name, grace_period_seconds=0 if force else None)
    except NotFoundError:
        pass
    try:
        await api.resource("v1", "configmaps", ns).delete(STOPPED_PREFIX + name)
        found = True
    except NotFoundError:
        pass
    if not found:
        raise CliError(f"No such container: {name}")


# -- stats ----------------------------------------------------------------------------------


@kube_flags()
def stats(
    kube: Kube,
    names: list[str] = typer.Argument(None, help="Containers (default: all running)."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print once and exit."),
    output: str = DockerOutput,
) -> None:
    """Show containers' cpu and memory use (metrics.k8s.io), refreshed every 2 seconds."""
    _on_api(kube, lambda api, ns: _stats(api, ns, names or [], no_stream or bool(output), output))


async def _stats(api: ApiClient, ns: str, names: list[str], once: bool, output: str) -> None:
    while True:
        rows = await stats_rows(api, ns, names)
        if output:
            print(dump(rows, output))
        else:
            if not once:
                sys.stdout.write("\x1b[2J\x1b[H")
            print(aligned(["NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %"],
                          [[r["name"], f"{r['cpuPercent']:.2f}%",
                            f"{_mib(r['memoryBytes'])} / {_mib(r['memoryLimitBytes'])}",
                            f"{r['memoryPercent']:.2f}%"] for r in rows]))
            sys.stdout.flush()
        if once:
            return
        await asyncio.sleep(2)


async def stats_rows(api: ApiClient, ns: str, names: list[str]) -> list[Obj]:
    """Return per-pod cpu % (of one core, as Docker) and memory use against its limit."""
    metrics = {m["metadata"]["name"]: m for m in await pod_metrics(api, ns)}
    missing = [n for n in names if n not in metrics]
    if missing:
        raise CliError(f"No such container (or no metrics yet): {', '.join(missing)}")
    pods = {p["metadata"]["name"]: p for p in (await api.resource("v1", "pods", ns).list()).items}
    nodes = {n["metadata"]["name"]: n for n in (await api.resource("v1", "nodes").list()).items}
    rows = []
    for name in names or sorted(metrics):
        cpu, memory = pod_usage(metrics[name])
        limit = _memory_limit(pods.get(name), nodes)
        rows.append({"name": name, "cpuPercent": cpu / 10.0, "memoryBytes": memory,
                     "memoryLimitBytes": limit,
                     "memoryPercent": 100.0 * memory / limit if limit else 0.0})
    return rows


def _memory_limit(pod: Obj | None, nodes: dict[str, Obj]) -> int:
    if pod is None:
        return 0
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        if limit is None:
            total = 0
            break
        total += to_int(limit)
    if total:
        return total
    node = nodes.get((pod.get("spec") or {}).get("nodeName", ""))  # no limit: the node's memory
    memory = ((node or {}).get("status") or {}).get("capacity", {}).get("memory", "0")
    return to_int(memory)


def _mib(count: int) -> str:
    if count >= 1 << 30:
        return f"{count / (1 << 30):.2f}GiB"
    return f"{count / (1 << 20):.2f}MiB"

