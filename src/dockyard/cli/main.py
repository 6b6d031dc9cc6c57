"""The `dockyard` command: one Typer app; each group of verbs lives in its own module."""

from __future__ import annotations

import typer

from dockyard.cli import build_commands, kube_verbs, server_commands
from dockyard.cli.agent_command import agent
from dockyard.cli.image_commands import image_app
from dockyard.cli.node_commands import node_app
from dockyard.cli.simulate_command import simulate

app = typer.Typer(
    name="dockyard",
    help="Build, run and orchestrate containers: Docker's verbs, Kubernetes' API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """Build, run and orchestrate containers: Docker's verbs, Kubernetes' API."""


app.command()(server_commands.server)
app.command()(server_commands.kubeconfig)
app.add_typer(server_commands.token_app, name="token")
app.add_typer(node_app, name="node")
app.add_typer(image_app, name="image")
app.command()(simulate)
for _verb in (build_commands.build, build_commands.pull, build_commands.push, build_commands.login,
              build_commands.logout, build_commands.images, build_commands.tag,
              build_commands.rmi, build_commands.history, build_commands.inspect,
              build_commands.save, build_commands.load):
    app.command()(_verb)
app.command()(agent)
kube_verbs.register(app)


def main() -> None:
    """Run the command line."""
    app()
