"""get, describe, apply, diff, delete and simulate take kubectl's connection flags from kube_flags.

Each flag is declared once (kubeargs) and reaches the connection: a kubeconfig or context that
cannot be used ends as one "error:" line with kubectl's exit code (diff: 2, simulate: 2), before
any request is sent, so these tests need no server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard.cli.main import app

pytestmark = pytest.mark.unit

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u1
  user: {token: t}
contexts:
- name: ctx1
  context: {cluster: c1, user: u1, namespace: team}
current-context: ctx1
"""
MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"

# verb -> (has --namespace/-n, has --all-namespaces/-A)
VERBS = {"get": (True, True), "describe": (True, True), "apply": (True, False),
         "diff": (True, False), "delete": (True, False), "simulate": (False, False)}


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_each_connection_flag_is_listed_once(verb: str) -> None:
    code, shown, _ = invoke([verb, "--help"])
    namespace, all_namespaces = VERBS[verb]
    assert code == 0
    assert shown.count("--kubeconfig") == 1 and shown.count("--context") == 1
    assert shown.count("--namespace") == int(namespace)
    assert shown.count("--all-namespaces") == int(all_namespaces)


def verb_args(verb: str, tmp_path: Path) -> list[str]:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(MANIFEST)
    return {"get": ["get", "pods"], "describe": ["describe", "pod", "web"],
            "apply": ["apply", "-f", str(manifest)], "diff": ["diff", "-f", str(manifest)],
            "delete": ["delete", "pod", "web"], "simulate": ["simulate", "--from-cluster"]}[verb]


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_an_absent_kubeconfig_is_one_error_line(verb: str, tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    code, out, err = invoke([*verb_args(verb, tmp_path), "--kubeconfig", str(absent)])
    assert code == (2 if verb in ("diff", "simulate") else 1)
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert str(absent) in err and "Traceback" not in err


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_the_context_flag_reaches_the_kubeconfig(verb: str, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(KUBECONFIG)
    code, _, err = invoke([*verb_args(verb, tmp_path), "--kubeconfig", str(config),
                           "--context", "elsewhere"])
    assert code == (2 if verb in ("diff", "simulate") else 1)
    assert "context 'elsewhere' not found" in err


@pytest.mark.parametrize(("args", "allowed"), [
    (["get", "pods", "-o", "bad"], "wide, json, yaml, name"),
    (["apply", "-f", "-", "-o", "wide"], "json, yaml, name"),
    (["events", "-o", "bad"], "json, yaml, name"),
    (["rollout", "history", "deploy/web", "-o", "wide"], "json, yaml"),
])
def test_an_unknown_output_is_one_error_line(args: list[str], allowed: str) -> None:
    code, out, err = invoke(args)
    assert code == 1 and out == ""
    assert err == ("error: unable to match a printer suitable for the output format "
                   f'"{args[-1]}", allowed formats are: {allowed}\n')


def test_a_mistyped_resource_is_named_before_the_kubeconfig_is_read(tmp_path: Path) -> None:
    code, _, err = invoke(["get", "pdos", "--kubeconfig", str(tmp_path / "absent")])
    assert code == 1
    assert err == 'error: the server doesn\'t have a resource type "pdos" — did you mean pods?\n'
