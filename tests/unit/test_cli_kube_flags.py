"""kube_flags: the connection flags a verb gets, and the one Kube it is called with."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from dockyard.cli.kubeargs import Kube, kube_flags

pytestmark = pytest.mark.unit


def app_of(verb: object) -> typer.Typer:
    app = typer.Typer()
    app.command()(verb)  # type: ignore[arg-type]
    app.command("other")(lambda: None)  # a second verb keeps the first one's name on the CLI
    return app


def test_the_flags_become_one_kube_after_the_verbs_own_parameters() -> None:
    seen: list[tuple[Kube, str, int]] = []

    @kube_flags(all_namespaces=True)
    def verb(kube: Kube, name: str = typer.Argument(...), count: int = typer.Option(1)) -> None:
        """Do something."""
        seen.append((kube, name, count))

    result = CliRunner().invoke(app_of(verb), ["verb", "web", "--count", "3", "-n", "prod", "-A",
                                               "--kubeconfig", "/k", "--context", "c"])
    assert result.exit_code == 0, result.output
    assert seen == [(Kube("/k", "c", "prod", True), "web", 3)]
    shown = CliRunner().invoke(app_of(verb), ["verb", "--help"]).output
    assert shown.index("--count") < shown.index("--namespace") < shown.index("--context")


def test_cluster_verbs_have_no_namespace_flag() -> None:
    @kube_flags(namespace=False)
    def verb(kube: Kube) -> None:
        """Do something cluster-wide."""
        print(kube)

    result = CliRunner().invoke(app_of(verb), ["verb", "-n", "prod"])
    assert result.exit_code == 2 and "No such option" in result.output
    result = CliRunner().invoke(app_of(verb), ["verb", "--context", "c"])
    assert result.exit_code == 0 and "Kube(kubeconfig=None, context='c', namespace=None" in (
        result.output)
