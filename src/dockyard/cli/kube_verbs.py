"""Registers the client verbs (kubectl-style and docker-style) on the root `dockyard` app.

One place lists them so main.py needs a single line, and the order here is the order
`dockyard --help` shows them in.
"""

from __future__ import annotations

import typer

from dockyard.cli import apply, get, kube_commands
from dockyard.cli.rollout import rollout_app


def register(app: typer.Typer) -> None:
    """Add the kubectl-style and docker-style verbs to the root app."""
    for verb in (apply.apply, get.get, get.describe, apply.delete, kube_commands.scale,
                 apply.diff, kube_commands.events, kube_commands.cordon,
                 kube_commands.uncordon, kube_commands.drain, kube_commands.autoscale,
                 kube_commands.version, kube_commands.status):
        app.command()(verb)
    app.command("port-forward")(kube_commands.port_forward)
    app.add_typer(rollout_app, name="rollout")
    app.add_typer(kube_commands.set_app, name="set")
    app.add_typer(kube_commands.top_app, name="top")
