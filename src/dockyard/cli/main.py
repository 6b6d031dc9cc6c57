"""The `dockyard` command: one Typer app; each group of verbs lives in its own module.

Verbs are listed here by module and attribute and imported only when they run (cli/lazy.py),
so `dockyard version` does not pay for the image builder or the simulator's numpy.
"""

from __future__ import annotations

import typer

from dockyard.cli.kube_verbs import CLIENT_VERBS
from dockyard.cli.lazy import LazyVerb, lazy_group

_BUILD_VERBS = ("build", "pull", "push", "login", "logout", "images", "tag", "rmi", "history",
                "inspect", "save", "load")

CLUSTER_VERBS: tuple[LazyVerb, ...] = (
    LazyVerb("server", "dockyard.cli.server_commands:server"),
    LazyVerb("kubeconfig", "dockyard.cli.server_commands:kubeconfig"),
    LazyVerb("token", "dockyard.cli.server_commands:token_app"),
    LazyVerb("node", "dockyard.cli.node_commands:node_app"),
    LazyVerb("image", "dockyard.cli.image_commands:image_app"),
    LazyVerb("simulate", "dockyard.cli.simulate_command:simulate"),
    *(LazyVerb(name, f"dockyard.cli.build_commands:{name}") for name in _BUILD_VERBS),
    LazyVerb("agent", "dockyard.cli.agent_command:agent"),
)

app = typer.Typer(
    name="dockyard",
    help="Build, run and orchestrate containers: Docker's verbs, Kubernetes' API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=lazy_group(CLUSTER_VERBS + CLIENT_VERBS),
)


@app.callback()
def root() -> None:
    """Build, run and orchestrate containers: Docker's verbs, Kubernetes' API."""


def main() -> None:
    """Run the command line."""
    app()
