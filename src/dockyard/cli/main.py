"""The `dockyard` command: one Typer app; each group of verbs lives in its own module."""

from __future__ import annotations

import typer

from dockyard import __version__

app = typer.Typer(
    name="dockyard",
    help="Build, run and orchestrate containers: Docker's verbs, Kubernetes' API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """Build, run and orchestrate containers: Docker's verbs, Kubernetes' API."""


@app.command()
def version() -> None:
    """Print the dockyard version."""
    typer.echo(f"dockyard {__version__}")


def main() -> None:
    """Run the command line."""
    app()
