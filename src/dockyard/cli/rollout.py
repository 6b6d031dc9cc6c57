"""`dockyard rollout status|history|undo|pause|resume|restart` for Deployments, as kubectl does.

- status: watches the Deployment until ``observedGeneration >= generation`` and
  ``updatedReplicas == replicas == spec.replicas == availableReplicas`` (kubectl's rule).
- history: the ReplicaSets the Deployment controls, by their
  ``deployment.kubernetes.io/revision`` annotation and ``kubernetes.io/change-cause``.
- undo: a JSON patch replacing ``/spec/template`` with the chosen revision's template (minus
  its ``pod-template-hash`` label), as kubectl sends it; the controller then reuses that
  ReplicaSet.
- pause/resume: merge patch of ``spec.paused``; restart: the template annotation
  ``kubectl.kubernetes.io/restartedAt``, so kubectl and dockyard restarts look the same.

Invariant: only standard Deployment/ReplicaSet reads and patches.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import typer

from dockyard.cli.kubeargs import (
    CliError,
    Kube,
    KubeCommand,
    OutputOption,
    kube_flags,
    one_target,
    parse_duration,
    run_on_api,
)
from dockyard.cli.printers import aligned, check_output, dump, echo, info_name
from dockyard.cli.waiting import wait_for_object
from dockyard.client import ApiClient, ResourceClient
from dockyard.objects.meta import is_controlled_by
from dockyard.objects.resources import ResourceInfo

Obj = dict[str, Any]
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

rollout_app = typer.Typer(help="Manage the rollout of a Deployment.", no_args_is_help=True)
TargetArg = typer.Argument(..., help="deployment/NAME (or NAME).")


def _deployment(api: ApiClient, target: str, namespace: str) -> tuple[ResourceInfo, str,
                                                                      ResourceClient]:
    info, name = one_target(target, "deployment")
    if info.kind != "Deployment":
        raise CliError(f"rollout works on deployments, not {info.plural}")
    return info, name, api.resource(info.api_version, info.plural, namespace)


@rollout_app.command("status", cls=KubeCommand)
@kube_flags()
def status(
    kube: Kube,
    target: str = TargetArg,
    timeout: float = typer.Option(600.0, "--timeout", parser=parse_duration,
                                  help="Seconds to wait."),
    watch: bool = typer.Option(True, "--watch/--no-watch", "-w", help="Wait until done."),
) -> None:
    """Show a rollout's progress and wait until it finishes."""
    run_on_api(kube, lambda api, ns: _status(api, ns, target, timeout, watch))


async def _status(api: ApiClient, ns: str, target: str, timeout: float, watch: bool) -> None:
    _info, name, rc = _deployment(api, target, ns)
    shown: set[str] = set()

    def done(obj: Obj) -> bool:
        message, finished = rollout_message(obj)
        if message not in shown:
            shown.add(message)
            echo(message)
        return finished or not watch

    await wait_for_object(rc, name, done, timeout, f'deployment "{name}" rollout to finish')


def rollout_message(obj: Obj) -> tuple[str, bool]:
    """Return kubectl's rollout status line for a Deployment and whether it is done."""
    name = obj["metadata"]["name"]
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    want = int(spec.get("replicas", 1))
    updated = int(st.get("updatedReplicas") or 0)
    replicas = int(st.get("replicas") or 0)
    available = int(st.get("availableReplicas") or 0)
    if int(obj["metadata"].get("generation") or 0) > int(st.get("observedGeneration") or 0):
        return "Waiting for deployment spec update to be observed...", False
    for cond in st.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            raise CliError(f'deployment "{name}" exceeded its progress deadline')
    if updated < want:
        return (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {want} '
                "new replicas have been updated..."), False
    if replicas > updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {replicas - updated} old '
                "replicas are pending termination..."), False
    if available < updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} '
                "updated replicas are available..."), False
    return f'deployment "{name}" successfully rolled out', True


@rollout_app.command("history", cls=KubeCommand)
@kube_flags()
def history(
    kube: Kube,
    target: str = TargetArg,
    revision: int = typer.Option(0, "--revision", help="Show this revision's pod template."),
    output: str = OutputOption,
) -> None:
    """List a Deployment's revisions (its ReplicaSets)."""
    check_output(output, ("", "json", "yaml"))
    run_on_api(kube, lambda api, ns: _history(api, ns, target, revision, output))


async def _history(api: ApiClient, ns: str, target: str, revision: int, output: str) -> None:
    _info, name, rc = _deployment(api, target, ns)
    revisions = await revisions_of(api, await rc.get(name), ns)
    if revision:
        if revision not in revisions:
            raise CliError(f"unable to find the specified revision {revision}")
        template = revisions[revision]["spec"]["template"]
        print(dump(template, output or "yaml"))
        return
    if output:
        print(dump([{"revision": r, "changeCause": _cause(rs)} for r, rs in
                    sorted(revisions.items())], output))
        return
    print(f"deployment.apps/{name}")
    print(aligned(["REVISION", "CHANGE-CAUSE"],
                  [[r, _cause(rs) or "<none>"] for r, rs in sorted(revisions.items())]))


def _cause(rs: Obj) -> str:
    return str((rs["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, ""))


async def revisions_of(api: ApiClient, deployment: Obj, ns: str) -> dict[int, Obj]:
    """Return the Deployment's ReplicaSets by revision number."""
    selector = (deployment.get("spec") or {}).get("selector") or {}
    labels = ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
    listed = await api.resource("apps/v1", "replicasets", ns).list(labels or None)
    out: dict[int, Obj] = {}
    for rs in listed.items:
        if not is_controlled_by(rs, deployment):
            continue
        value = (rs["metadata"].get("annotations") or {}).get(REVISION)
        if value and str(value).isdigit():
            out[int(value)] = rs
    return out


@rollout_app.command("undo", cls=KubeCommand)
@kube_flags()
def undo(
    kube: Kube,
    target: str = TargetArg,
    to_revision: int = typer.Option(0, "--to-revision", help="Revision to go back to."),
) -> None:
    """Roll a Deployment back to the previous (or a given) revision."""
    run_on_api(kube, lambda api, ns: _undo(api, ns, target, to_revision))


async def _undo(api: ApiClient, ns: str, target: str, to_revision: int) -> None:
    info, name, rc = _deployment(api, target, ns)
    deployment = await rc.get(name)
    revisions = await revisions_of(api, deployment, ns)
    current = int((deployment["metadata"].get("annotations") or {}).get(REVISION) or 0)
    chosen = to_revision or max((r for r in revisions if r != current), default=0)
    if not chosen:
        raise CliError(f'no rollout history found for deployment "{name}": nothing to roll back to')
    if chosen not in revisions:
        raise CliError(f"unable to find specified revision {chosen} in history")
    if chosen == current:
        print(f"{info_name(info, name)} skipped rollback (current template already matches "
              f"revision {chosen})")
        return
    template = copy.deepcopy(revisions[chosen]["spec"]["template"])
    (template.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    patch = [{"op": "replace", "path": "/spec/template", "value": template}]
    await rc.patch(name, patch, "json")
    print(f"{info_name(info, name)} rolled back")


def _simple(action: str, patch: Any, help_text: str) -> Any:
    @kube_flags()
    def command(
        kube: Kube,
        target: str = TargetArg,
    ) -> None:
        run_on_api(kube, lambda api, ns: _patch(api, ns, target, action, patch))

    command.__doc__ = help_text
    return command


async def _patch(api: ApiClient, ns: str, target: str, action: str, patch: Any) -> None:
    info, name, rc = _deployment(api, target, ns)
    body = patch() if callable(patch) else patch
    await rc.patch(name, body, "strategic")
    print(f"{info_name(info, name)} {action}")


def restart_patch() -> Obj:
    """Return the patch that restarts a Deployment's pods (kubectl's restartedAt)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}


rollout_app.command("pause", cls=KubeCommand)(_simple("paused", {"spec": {"paused": True}},
                                     "Pause a Deployment's rollout."))
rollout_app.command("resume", cls=KubeCommand)(_simple("resumed", {"spec": {"paused": None}},
                                      "Resume a paused Deployment's rollout."))
rollout_app.command("restart", cls=KubeCommand)(_simple("restarted", restart_patch,
                                       "Restart a Deployment's pods by a new rollout."))
