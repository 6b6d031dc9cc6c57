"""The root command loads each verb's module only when that verb runs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dockyard.cli.kube_verbs import CLIENT_VERBS
from dockyard.cli.main import CLUSTER_VERBS, app

pytestmark = pytest.mark.unit


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(*sys.modules)"],
                         check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_importing_the_root_command_imports_no_verb() -> None:
    loaded = _modules_after("import dockyard.cli.main")
    for heavy in ("aiohttp", "numpy", "dockyard.images.builder", "dockyard.cli.kube_commands"):
        assert heavy not in loaded


@pytest.mark.parametrize("verb", CLUSTER_VERBS + CLIENT_VERBS, ids=lambda verb: verb.name)
def test_every_verb_loads_under_its_name(verb) -> None:  # type: ignore[no-untyped-def]
    command = verb.load()
    assert command.name == verb.name
    assert command.help or command.short_help


def test_help_lists_the_verbs_in_table_order() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    listed = [line.strip("│ ").split(" ")[0] for line in result.output.splitlines()]
    names = [verb.name for verb in CLUSTER_VERBS + CLIENT_VERBS]
    assert [name for name in listed if name in names] == names


def test_an_unknown_verb_is_refused_by_name() -> None:
    result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 2
    assert "deploy" in result.output
