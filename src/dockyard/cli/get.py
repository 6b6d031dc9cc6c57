"""`dockyard get` and `dockyard describe`: read objects as kubectl prints them.

`get` requests server-side Tables (Accept ``as=Table;g=meta.k8s.io;v=v1``) for the human forms
and plain JSON for ``-o json|yaml|name``; ``-w`` lists, prints, then watches from the list's
resourceVersion and prints one row per event (re-reading the row as a Table, since a watch
event carries the object, not its columns). `describe` prints an object's fields as indented
"Key: value" lines followed by its Events (fieldSelector ``involvedObject.*``, as kubectl).

Invariants: only standard list/get/watch calls; a missing object prints kubectl's
``Error from server (NotFound)`` line and makes the verb exit 1 after printing the rest.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import typer

from dockyard.cli.kubeargs import (
    CliError,
    Kube,
    OutputOption,
    complete_kinds,
    errors,
    kube_flags,
    namespace_for,
    qualified,
    run_on_api,
    split_targets,
)
from dockyard.cli.printers import TABLE_ACCEPT, aligned, check_output, echo, print_objects
from dockyard.cli.printers import table_rows as rows_of
from dockyard.client import ApiClient, NotFoundError
from dockyard.client.api import resource_path
from dockyard.objects.meta import since
from dockyard.objects.resources import ResourceInfo

Obj = dict[str, Any]


Targets = list[tuple[ResourceInfo, str | None]]


@kube_flags(all_namespaces=True)
def get(
    kube: Kube,
    args: list[str] = typer.Argument(None, help="TYPE[,TYPE] [NAME...] or TYPE/NAME...",
                                     autocompletion=complete_kinds),
    output: str = OutputOption,
    selector: str = typer.Option("", "--selector", "-l", help="Label selector, e.g. app=web."),
    field_selector: str = typer.Option("", "--field-selector", help="Field selector."),
    watch: bool = typer.Option(False, "--watch", "-w", help="After listing, watch for changes."),
    request_timeout: int = typer.Option(0, "--request-timeout",
                                        help="Seconds a watch lasts (0: until interrupted)."),
) -> None:
    """Display one or many resources (kubectl get)."""
    with errors():
        check_output(output)
        targets = split_targets(args or [])
    query = _Query(selector, field_selector, watch, request_timeout)
    missing = run_on_api(kube, lambda api, ns: _get(api, targets, _scope(kube, ns), output,
                                                    query))  # fmt: skip
    if missing:
        raise typer.Exit(1)


class _Query:
    """The selectors and watch settings of one `get`."""

    def __init__(self, labels: str, fields: str, watch: bool, timeout: int) -> None:
        self.labels, self.fields, self.watch, self.timeout = labels, fields, watch, timeout


def _scope(kube: Kube, namespace: str) -> str | None:
    # None asks for every namespace (-A); the namespace column goes with it.
    return None if kube.all_namespaces else namespace


async def _get(api: ApiClient, targets: Targets, ns: str | None, output: str,
               query: _Query) -> bool:  # fmt: skip
    if output in ("json", "yaml", "name"):
        objs, missing = await _objects(api, targets, ns, query)
        single = len(targets) == 1 and targets[0][1] is not None
        if objs or output != "name":
            print_objects(objs, output, single)
    else:
        missing = await _tables(api, targets, ns, output == "wide", query)
    if query.watch:
        await _watch(api, targets, ns, output, query)
    return missing


async def _objects(api: ApiClient, targets: Targets, ns: str | None,
                   query: _Query) -> tuple[list[Obj], bool]:  # fmt: skip
    objs: list[Obj] = []
    missing = False
    for info, name in targets:
        rc = api.resource(info.api_version, info.plural, namespace_for(info, ns or ""))
        if name is None:
            objs.extend((await rc.list(query.labels or None, query.fields or None)).items)
            continue
        try:
            objs.append(await rc.get(name))
        except NotFoundError:
            _not_found(info, name)
            missing = True
    return objs, missing


def _not_found(info: ResourceInfo, name: str) -> None:
    print(f'Error from server (NotFound): {info.plural}{_group(info)} "{name}" not found',
          file=sys.stderr)


def _group(info: ResourceInfo) -> str:
    return f".{info.group}" if info.group else ""


async def _tables(api: ApiClient, targets: Targets, ns: str | None, wide: bool,
                  query: _Query) -> bool:  # fmt: skip
    missing = False
    printed = 0
    kinds = {info.plural for info, _ in targets}
    by_kind: dict[str, tuple[ResourceInfo, list[str], list[list[Any]]]] = {}
    for info, name in targets:
        try:
            table = await _read_table(api, info, ns, name, query)
        except NotFoundError:
            _not_found(info, name or "")
            missing = True
            continue
        prefix = qualified(info) if len(kinds) > 1 else ""
        headers, rows = rows_of(table, wide, ns is None and info.namespaced, prefix)
        _, _, known = by_kind.setdefault(info.plural, (info, headers, []))
        known.extend(rows)
    for _info, headers, rows in by_kind.values():
        if not rows:
            continue
        if printed:
            print()
        print(aligned(headers, rows))
        printed += 1
    if not printed and not missing:
        where = f" in {ns} namespace" if ns and any(i.namespaced for i, _ in targets) else ""
        print(f"No resources found{where}.", file=sys.stderr)
    sys.stdout.flush()
    return missing


async def _read_table(api: ApiClient, info: ResourceInfo, ns: str | None, name: str | None,
                      query: _Query) -> Obj:
    path = resource_path(info.api_version, info.plural, namespace_for(info, ns or ""), name)
    params: dict[str, Any] = {}
    if name is None:
        params = {"labelSelector": query.labels or None, "fieldSelector": query.fields or None,
                  "limit": 500}
    table: Obj = await api.request("GET", path, params=params, accept=TABLE_ACCEPT)
    return table


async def _watch(api: ApiClient, targets: Targets, ns: str | None, output: str,
                 query: _Query) -> None:  # fmt: skip
    info, name = targets[0]
    if len(targets) > 1:
        raise CliError("watch is only supported on a single resource type or object")
    rc = api.resource(info.api_version, info.plural, namespace_for(info, ns or ""))
    fields = f"metadata.name={name}" if name else (query.fields or None)
    listed = await rc.list(query.labels or None, fields)
    async with rc.watch(listed.resource_version, query.labels or None, fields,
                        timeout_seconds=query.timeout or None) as events:
        async for event in events:
            obj = event.object
            if output in ("json", "yaml", "name"):
                print_objects([obj], output, True)
                sys.stdout.flush()
                continue
            await _print_event_row(api, info, obj, event.type, output == "wide")


async def _print_event_row(api: ApiClient, info: ResourceInfo, obj: Obj, kind: str,
                           wide: bool) -> None:
    meta = obj.get("metadata") or {}
    name, obj_ns = meta.get("name", ""), meta.get("namespace")
    try:
        if kind == "DELETED":
            raise NotFoundError(404, "NotFound", "gone")
        table = await _read_table(api, info, obj_ns, name, _Query("", "", False, 0))
        _, rows = rows_of(table, wide, False)
        echo("   ".join(str(c) for c in rows[0]) if rows else name)
    except NotFoundError:
        echo(f"{name}   (deleted)")


# -- describe -------------------------------------------------------------------------------


@kube_flags(all_namespaces=True)
def describe(
    kube: Kube,
    args: list[str] = typer.Argument(..., help="TYPE [NAME...] or TYPE/NAME.",
                                     autocompletion=complete_kinds),
    selector: str = typer.Option("", "--selector", "-l", help="Label selector."),
) -> None:
    """Show details of objects and their recent events (kubectl describe)."""
    with errors():
        targets = split_targets(args)
    query = _Query(selector, "", False, 0)
    missing = run_on_api(kube, lambda api, ns: _describe(api, targets, _scope(kube, ns), query))
    if missing:
        raise typer.Exit(1)


async def _describe(api: ApiClient, targets: Targets, ns: str | None, query: _Query) -> bool:
    objs, missing = await _objects(api, targets, ns, query)
    for i, obj in enumerate(objs):
        if i:
            print()
        print(describe_text(obj, await _events_of(api, obj)))
    return missing


async def _events_of(api: ApiClient, obj: Obj) -> list[Obj]:
    meta = obj.get("metadata") or {}
    fields = [f"involvedObject.name={meta.get('name', '')}",
              f"involvedObject.kind={obj.get('kind', '')}"]
    if meta.get("namespace"):
        fields.append(f"involvedObject.namespace={meta['namespace']}")
    if meta.get("uid"):
        fields.append(f"involvedObject.uid={meta['uid']}")
    rc = api.resource("v1", "events", meta.get("namespace") or "default")
    listed = await rc.list(field_selector=",".join(fields))
    return sorted(listed.items, key=event_time)


def event_time(event: Obj) -> str:
    """Return the time an Event last happened (lastTimestamp, eventTime or creation)."""
    meta = event.get("metadata") or {}
    return str(event.get("lastTimestamp") or event.get("eventTime")
               or meta.get("creationTimestamp") or "")


def describe_text(obj: Obj, events: list[Obj]) -> str:
    """Render an object as describe's "Key: value" blocks, then its Events table."""
    meta = obj.get("metadata") or {}
    lines = [f"Name:         {meta.get('name', '')}"]
    if meta.get("namespace"):
        lines.append(f"Namespace:    {meta['namespace']}")
    lines.append(f"Kind:         {obj.get('kind', '')}")
    lines.append(f"Labels:       {_pairs(meta.get('labels'))}")
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    lines.append(f"Annotations:  {_pairs(annotations)}")
    lines.append(f"Created:      {meta.get('creationTimestamp', '<unknown>')}")
    owner = next(iter(meta.get("ownerReferences") or []), None)
    if owner:
        lines.append(f"Controlled By:  {owner.get('kind')}/{owner.get('name')}")
    for section in ("spec", "data", "status"):
        if obj.get(section):
            lines.append(f"{section.capitalize()}:")
            lines.extend(_fields(obj[section], 1))
    lines.append("Events:" + ("  <none>" if not events else ""))
    if events:
        now = datetime.now(UTC)
        rows = [[e.get("type", ""), e.get("reason", ""), since(event_time(e), now),
                 (e.get("source") or {}).get("component", "") or e.get("reportingComponent", ""),
                 e.get("message", "")] for e in events]
        table = aligned(["Type", "Reason", "Age", "From", "Message"], rows)
        lines.extend("  " + line for line in table.splitlines())
    return "\n".join(lines)


def _pairs(mapping: Any) -> str:
    if not mapping:
        return "<none>"
    return "\n              ".join(f"{k}={v}" for k, v in mapping.items())


_VERBATIM_KEYS = ("labels", "annotations", "matchLabels", "nodeSelector", "data", "limits",
                  "requests", "capacity", "allocatable")


def _fields(value: Any, depth: int, verbatim: bool = False) -> list[str]:
    pad = "  " * depth
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            # Map keys that are data (label keys, resource names) are printed as written.
            title = key if verbatim else _title(key)
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{title}:")
                lines.extend(_fields(item, depth + 1, key in _VERBATIM_KEYS))
            else:
                lines.append(f"{pad}{title}:  {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            sub = _fields(item, depth + 1)
            if sub and isinstance(item, dict):
                lines.append(f"{pad}- {sub[0].strip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return lines


def _title(key: str) -> str:
    return key[:1].upper() + key[1:]


def _scalar(value: Any) -> str:
    if value is None or value == {} or value == []:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
