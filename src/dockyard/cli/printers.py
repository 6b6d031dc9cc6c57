"""Printing objects as kubectl does: server-side Tables as aligned columns, `-o json|yaml|name`.

`get` asks the api server for a ``meta.k8s.io/v1`` Table (the columns kubectl shows) and prints
it here; the CLI never computes its own columns for built-in kinds, so a real cluster's kinds
print their real columns too.

Invariants: tables are plain text (three spaces between columns, upper-case headers, like
kubectl's tabwriter) so scripts can read them; `-o json` prints one object, or a ``v1 List``
when several were asked for; `-o name` prints ``kind.group/name`` lines.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from dockyard.cli.kubeargs import KUBE_ERROR, fail, qualified
from dockyard.objects.resources import ResourceInfo

Obj = dict[str, Any]

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
OUTPUTS = ("", "wide", "json", "yaml", "name")


def check_output(output: str, allowed: Sequence[str] = OUTPUTS) -> None:
    """Reject an unknown -o value with the list of allowed ones: one error line, exit 1."""
    if output not in allowed:
        shown = ", ".join(o for o in allowed if o)
        # fail, not CliError: verbs check -o before they enter errors(), as kubectl checks first.
        fail(f'unable to match a printer suitable for the output format "{output}", '
             f"allowed formats are: {shown}", KUBE_ERROR)


def aligned(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Lay rows out as kubectl's tabwriter does: left-aligned, three spaces apart."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(parts).rstrip())
    return "\n".join(lines)


def table_rows(table: Obj, wide: bool, namespace_column: bool, kind_prefix: str = ""
               ) -> tuple[list[str], list[list[Any]]]:
    """Return the headers and rows of a server Table (priority 0 columns unless wide)."""
    columns = table.get("columnDefinitions") or []
    keep = [i for i, c in enumerate(columns) if wide or not c.get("priority")]
    headers = [str(columns[i].get("name", "")).upper() for i in keep]
    rows: list[list[Any]] = []
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        out = [_cell(cells[i]) if i < len(cells) else "" for i in keep]
        if kind_prefix and out:
            out[0] = f"{kind_prefix}/{out[0]}"
        if namespace_column:
            meta = (row.get("object") or {}).get("metadata") or {}
            out.insert(0, meta.get("namespace", ""))
        rows.append(out)
    if namespace_column:
        headers.insert(0, "NAMESPACE")
    return headers, rows


def _cell(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def print_objects(objs: list[Obj], output: str, single: bool) -> None:
    """Print objects as json, yaml or name; several objects as a ``v1 List``."""
    if output == "name":
        for obj in objs:
            print(object_name(obj))
        return
    doc: Obj
    if single and len(objs) == 1:
        doc = objs[0]
    else:
        doc = {"apiVersion": "v1", "kind": "List", "items": objs,
               "metadata": {"resourceVersion": ""}}
    print(dump(doc, output))


def dump(doc: Any, output: str) -> str:
    """Serialise a document as indented JSON or block YAML (no trailing newline)."""
    if output == "json":
        return json.dumps(doc, indent=4, ensure_ascii=False)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False,
                          allow_unicode=True).rstrip("\n")


def object_name(obj: Obj) -> str:
    """Return ``kind.group/name`` for -o name (``pod/x``, ``deployment.apps/web``)."""
    api_version = str(obj.get("apiVersion") or "")
    group = api_version.split("/")[0] if "/" in api_version else ""
    kind = str(obj.get("kind") or "").lower()
    name = (obj.get("metadata") or {}).get("name", "")
    return f"{kind}.{group}/{name}" if group else f"{kind}/{name}"


def info_name(info: ResourceInfo, name: str) -> str:
    """Return ``deployment.apps/web`` for a resource and a name (kubectl's action lines)."""
    return f"{qualified(info)}/{name}"


def echo(text: str) -> None:
    """Print a line to stdout and flush (progress lines must show while waiting)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
