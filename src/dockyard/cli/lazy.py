"""Lazy verbs: the root `dockyard` group imports a verb's module only when that verb runs.

Every verb's module pulls in what it needs at import (aiohttp, the image builder, numpy for
the simulator), and importing all of them cost more than a second on each invocation. The
root group therefore knows each verb only by a `LazyVerb` (module and attribute names) and
builds the Click command on first use. `dockyard --help` still imports every verb, to show
each one's own help line; that is the one place where the cost stays.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal

import typer
import typer.main
from typer import _click as click  # Typer vendors its own Click; its types are these
from typer.core import TyperCommand, TyperGroup

CommandKind = Literal["plain", "kube", "docker"]


@dataclass(frozen=True)
class LazyVerb:
    """Where one verb lives: `module:attribute`, a Typer function or a Typer sub-app."""

    name: str
    target: str
    kind: CommandKind = "plain"
    context_settings: dict[str, Any] = field(default_factory=dict)

    def load(self) -> click.Command:
        """Import the verb's module and build its Click command."""
        module_name, attribute = self.target.split(":")
        found = getattr(importlib.import_module(module_name), attribute)
        if isinstance(found, typer.Typer):
            group = typer.main.get_group(found)
            group.name = self.name
            return group
        holder = typer.Typer()
        holder.command(self.name, cls=_command_class(self.kind),
                       context_settings=self.context_settings or None)(found)
        return typer.main.get_command(holder)


def _command_class(kind: CommandKind) -> type[TyperCommand] | None:
    if kind == "plain":
        return None
    from dockyard.cli.kubeargs import DockerCommand, KubeCommand

    return KubeCommand if kind == "kube" else DockerCommand


class LazyGroup(TyperGroup):
    """A root group whose verbs come from the `verbs` table, loaded on first use."""

    verbs: tuple[LazyVerb, ...] = ()

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Name the verbs in the table's order, after any registered eagerly."""
        eager = super().list_commands(ctx)
        return eager + [verb.name for verb in self.verbs if verb.name not in eager]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the named verb, importing its module the first time."""
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        for verb in self.verbs:
            if verb.name == cmd_name:
                loaded = verb.load()
                self.add_command(loaded, cmd_name)
                return loaded
        return None


def lazy_group(verbs: tuple[LazyVerb, ...]) -> type[LazyGroup]:
    """Make a LazyGroup class that serves `verbs` (Typer takes a class, not an instance)."""
    return type("DockyardGroup", (LazyGroup,), {"verbs": verbs})
