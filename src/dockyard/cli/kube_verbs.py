"""Registers the client verbs (kubectl-style and docker-style) on the root `dockyard` app.

One place lists them so main.py needs a single line, and the order here is the order
`dockyard --help` shows them in.
"""

from __future__ import annotations

import typer

from dockyard.cli import apply, docker_commands, get, kube_commands
from dockyard.cli.kubeargs import DockerCommand, KubeCommand
from dockyard.cli.rollout import rollout_app


def register(app: typer.Typer) -> None:
    """Add the kubectl-style and docker-style verbs to the root app."""
    for verb in (apply.apply, get.get, get.describe, apply.delete, kube_commands.scale,
                 apply.diff, kube_commands.events, kube_commands.cordon,
                 kube_commands.uncordon, kube_commands.drain, kube_commands.autoscale,
                 kube_commands.version, kube_commands.status):
        app.command(cls=KubeCommand)(verb)
    app.command("port-forward", cls=KubeCommand)(kube_commands.port_forward)
    # Flags after the image (or container) belong to the command run inside, as in Docker.
    inside = {"allow_interspersed_args": False}
    app.command("run", context_settings=inside, cls=DockerCommand)(docker_commands.run_command)
    app.command("exec", context_settings=inside, cls=DockerCommand)(
        docker_commands.exec_command)
    for docker_verb in (docker_commands.ps, docker_commands.logs, docker_commands.stop,
                        docker_commands.start, docker_commands.restart, docker_commands.rm,
                        docker_commands.stats):
        app.command(cls=DockerCommand)(docker_verb)
    app.add_typer(rollout_app, name="rollout")
    app.add_typer(kube_commands.set_app, name="set")
    app.add_typer(kube_commands.top_app, name="top")
