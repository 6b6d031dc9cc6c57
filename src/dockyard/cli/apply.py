"""`dockyard apply`, `diff` and `delete`: manifests from files, directories or stdin.

apply uses server-side apply (PATCH ``application/apply-patch+yaml``, ``fieldManager=dockyard``,
``force=true``): the server merges, records field ownership and creates absent objects, so the
CLI needs no OpenAPI schema and no last-applied annotation. ``force`` because a person's
manifest is the truth they want, as kubectl's client-side apply would overwrite too. Each object
is read first, only to report kubectl's "created" / "configured" / "unchanged" honestly
(unchanged = the resourceVersion did not move).

diff sends the same apply with ``dryRun=All`` and prints a unified diff of live vs. result
(both without managedFields and other server bookkeeping); exit 0 = no differences,
1 = differences, 2 = error, as `kubectl diff`.

Invariants: a YAML error names the file and line and nothing is sent; documents are applied in
file order (so a Namespace before what lives in it); an object without apiVersion/kind/name is
reported with its file and document number.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

import typer
import yaml

from dockyard.cli.kubeargs import (
    CliError,
    Kube,
    OutputOption,
    complete_kinds,
    errors,
    kube_flags,
    namespace_for,
    parse_duration,
    run_on_api,
    split_targets,
)
from dockyard.cli.printers import check_output, dump, info_name, object_name, print_objects
from dockyard.cli.waiting import wait_gone
from dockyard.client import ApiClient, NotFoundError, ResourceClient
from dockyard.objects.resources import ResourceInfo, lookup_kind, lookup_kind_any_version

Obj = dict[str, Any]
FIELD_MANAGER = "dockyard"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
FilenameOption = typer.Option([], "--filename", "-f", help="File, directory or - (stdin).")


class Manifest:
    """One object read from a manifest, with where it came from for messages."""

    def __init__(self, obj: Obj, source: str, index: int) -> None:
        self.obj, self.source, self.index = obj, source, index

    @property
    def where(self) -> str:
        """Return "FILE (document N)" for messages."""
        return f"{self.source} (document {self.index + 1})"


def load_manifests(paths: list[str]) -> list[Manifest]:
    """Read every object from files, directories (their *.yaml|yml|json) and - (stdin)."""
    if not paths:
        raise CliError("must specify -f FILE (a file, a directory or - for stdin)")
    out: list[Manifest] = []
    for path in paths:
        for source, text in _sources(path):
            out.extend(parse_manifests(text, source))
    if not out:
        raise CliError(f"no objects passed to apply in {', '.join(paths)}")
    return out


def _sources(path: str) -> list[tuple[str, str]]:
    if path == "-":
        return [("<stdin>", sys.stdin.read())]
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in MANIFEST_SUFFIXES and f.is_file())
        return [(str(f), f.read_text()) for f in files]
    if not p.exists():
        raise CliError(f'the path "{path}" does not exist')
    return [(str(p), p.read_text())]


def parse_manifests(text: str, source: str) -> list[Manifest]:
    """Parse multi-document YAML (or JSON); name the file and line of a syntax error."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise CliError(f"error parsing {source}:{line}: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise CliError(f"error parsing {source}: {e}") from None
    out: list[Manifest] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise CliError(f"{source} (document {i + 1}): not an object (a YAML mapping)")
        items = doc.get("items") if str(doc.get("kind", "")).endswith("List") else None
        for obj in items if isinstance(items, list) else [doc]:
            out.append(_checked(Manifest(obj, source, i)))
    return out


def _checked(m: Manifest) -> Manifest:
    for field in ("apiVersion", "kind"):
        if not m.obj.get(field):
            raise CliError(f"{m.where}: error validating data: {field} not set")
    if not (m.obj.get("metadata") or {}).get("name"):
        raise CliError(f"{m.where}: {m.obj['kind']} has no metadata.name")
    return m


def manifest_resource(m: Manifest) -> ResourceInfo:
    """Return the served resource for a manifest's apiVersion and kind."""
    info = lookup_kind(str(m.obj["apiVersion"]), str(m.obj["kind"]))
    if info is None:
        other = lookup_kind_any_version(str(m.obj["kind"]))
        hint = f" (this server serves {other.kind} as {other.api_version})" if other else ""
        raise CliError(f'{m.where}: no matches for kind "{m.obj["kind"]}" in version '
                       f'"{m.obj["apiVersion"]}"{hint}')
    return info


def _client(api: ApiClient, m: Manifest, namespace: str) -> tuple[ResourceInfo, ResourceClient]:
    info = manifest_resource(m)
    meta = m.obj.setdefault("metadata", {})
    ns = None
    if info.namespaced:
        ns = meta.get("namespace") or namespace
        meta["namespace"] = ns
    return info, api.resource(info.api_version, info.plural, ns)


# -- apply ----------------------------------------------------------------------------------


@kube_flags()
def apply(
    kube: Kube,
    filename: list[str] = FilenameOption,
    output: str = OutputOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Ask the server, change nothing."),
) -> None:
    """Apply a configuration by file name or stdin (server-side apply, manager "dockyard")."""
    with errors():
        check_output(output, ("", "json", "yaml", "name"))
        manifests = load_manifests(filename)
    run_on_api(kube, lambda api, ns: _apply(api, ns, manifests, output, dry_run))


async def _apply(api: ApiClient, namespace: str, manifests: list[Manifest], output: str,
                 dry_run: bool) -> None:  # fmt: skip
    results: list[Obj] = []
    for m in manifests:
        info, before, after = await _server_side_apply(api, m, namespace, dry_run)
        results.append(after)
        if output:
            continue
        if before is None:
            verb = "created"
        elif _rv(before) == _rv(after):
            verb = "unchanged"
        else:
            verb = "configured"
        suffix = " (server dry run)" if dry_run else ""
        print(f"{info_name(info, m.obj['metadata']['name'])} {verb}{suffix}", flush=True)
    if output:
        print_objects(results, output, single=len(results) == 1)


async def _server_side_apply(api: ApiClient, m: Manifest, namespace: str, dry_run: bool
                             ) -> tuple[ResourceInfo, Obj | None, Obj]:  # fmt: skip
    """Apply one manifest; return its resource and the object before (None: absent) and after."""
    info, rc = _client(api, m, namespace)
    name = m.obj["metadata"]["name"]
    before = await _current(rc, name)
    after = await rc.patch(name, m.obj, "apply", field_manager=FIELD_MANAGER, force=True,
                           dry_run=dry_run)
    return info, before, after


async def _current(rc: ResourceClient, name: str) -> Obj | None:
    try:
        return await rc.get(name)
    except NotFoundError:
        return None


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


# -- diff -----------------------------------------------------------------------------------


@kube_flags()
def diff(kube: Kube, filename: list[str] = FilenameOption) -> None:
    """Show what apply would change (exit 0: none, 1: differences, 2: error)."""
    with errors(2):
        manifests = load_manifests(filename)
    changed = run_on_api(kube, lambda api, ns: _diff(api, ns, manifests), exit_code=2)
    if changed:
        raise typer.Exit(1)


_VOLATILE_META = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")


async def _diff(api: ApiClient, namespace: str, manifests: list[Manifest]) -> bool:
    changed = False
    for m in manifests:
        _info, live, merged = await _server_side_apply(api, m, namespace, dry_run=True)
        old = _comparable(live) if live is not None else ""
        new = _comparable(merged)
        if old == new:
            continue
        changed = True
        label = object_name(merged)
        sys.stdout.writelines(difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True),
            fromfile=f"live/{label}", tofile=f"merged/{label}"))
    sys.stdout.flush()
    return changed


def _comparable(obj: Obj) -> str:
    copy = dict(obj)
    meta = dict(copy.get("metadata") or {})
    for key in _VOLATILE_META:
        meta.pop(key, None)
    copy["metadata"] = meta
    copy.pop("status", None)
    return dump(copy, "yaml") + "\n"


# -- delete ---------------------------------------------------------------------------------


@kube_flags()
def delete(
    kube: Kube,
    args: list[str] = typer.Argument(None, help="TYPE NAME..., TYPE/NAME... (or -f FILE).",
                                     autocompletion=complete_kinds),
    filename: list[str] = FilenameOption,
    selector: str = typer.Option("", "--selector", "-l", help="Delete what matches."),
    all_objects: bool = typer.Option(False, "--all", help="Delete every object of the type."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until they are gone."),
    timeout: float = typer.Option(120.0, "--timeout", parser=parse_duration,
                                  help="Seconds to wait for deletion."),
    grace_period: int = typer.Option(-1, "--grace-period", help="Seconds to stop pods."),
    ignore_not_found: bool = typer.Option(False, "--ignore-not-found",
                                          help="A missing object is no error."),
) -> None:
    """Delete objects by type and name, selector or manifest (kubectl delete)."""
    options = _DeleteOptions(wait, timeout, grace_period, ignore_not_found)
    with errors():
        manifests = load_manifests(filename) if filename else []
    missing = run_on_api(kube, lambda api, ns: _delete(api, ns, args or [], manifests, selector,
                                                       all_objects, options))  # fmt: skip
    if missing:
        raise typer.Exit(1)


class _DeleteOptions:
    def __init__(self, wait: bool, timeout: float, grace: int, ignore: bool) -> None:
        self.wait, self.timeout, self.grace, self.ignore = wait, timeout, grace, ignore


async def _delete(api: ApiClient, namespace: str, args: list[str], manifests: list[Manifest],
                  selector: str, all_objects: bool, options: _DeleteOptions) -> bool:
    pairs = await _delete_targets(api, namespace, args, manifests, selector, all_objects)
    missing = False
    deleted: list[tuple[ResourceInfo, ResourceClient, str]] = []
    for info, rc, name in pairs:
        try:
            await rc.delete(name, propagation_policy="Background",
                            grace_period_seconds=options.grace if options.grace >= 0 else None)
        except NotFoundError:
            if not options.ignore:
                print(f'Error from server (NotFound): {info.plural} "{name}" not found',
                      file=sys.stderr)
                missing = True
            continue
        print(f'{info_name(info, name).split("/")[0]} "{name}" deleted', flush=True)
        deleted.append((info, rc, name))
    if options.wait:
        for _info, rc, name in deleted:
            await wait_gone(rc, name, options.timeout)
    return missing


async def _delete_targets(api: ApiClient, namespace: str, args: list[str],
                          manifests: list[Manifest], selector: str, all_objects: bool,
                          ) -> list[tuple[ResourceInfo, ResourceClient, str]]:
    out: list[tuple[ResourceInfo, ResourceClient, str]] = []
    for m in manifests:
        info, rc = _client(api, m, namespace)
        out.append((info, rc, m.obj["metadata"]["name"]))
    if not args:
        if not manifests:
            raise CliError("you must provide one or more resources by argument or filename")
        return out
    for info, name in split_targets(args):
        rc = api.resource(info.api_version, info.plural, namespace_for(info, namespace))
        if name is not None:
            out.append((info, rc, name))
        elif selector or all_objects:
            listed = await rc.list(selector or None)
            out.extend((info, rc, o["metadata"]["name"]) for o in listed.items)
        else:
            raise CliError(f"resource(s) were provided, but no name was specified: give a name, "
                           f"-l SELECTOR or --all for {info.plural}")
    return out

