"""Docker-style top-level image verbs: build, pull, push, login, images, tag, rmi, history,
inspect, save, load, and `image prune` (in image_commands).

Each verb works directly on the image store under --data-dir, like `dockyard image ...`,
whose helpers it reuses. Errors print one line naming the problem (exit code 1); a failing
build prints the failing step's output and exit code.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)
from rich.status import Status
from rich.table import Table

from dockyard.cli import image_commands
from dockyard.cli.image_commands import DataDir, _clear_errors, _size, _store, print_error
from dockyard.images.builder import Builder, BuildError, BuildEvent, BuildOptions
from dockyard.images.context import ContextError
from dockyard.images.credentials import CredentialStore, default_config_path
from dockyard.images.dockerfile import DockerfileSyntaxError
from dockyard.images.registry_client import RegistryClient, RegistryError, TransferEvent

console = Console()

ConfigOption = typer.Option(None, "--config", help="Docker-style config dir (~/.docker).")
InsecureOption = typer.Option(False, "--insecure", help="Use plain HTTP to the registry.")
TlsVerifyOption = typer.Option(True, "--tls-verify/--no-tls-verify",
                               help="Verify the registry's TLS certificate.")
CaCertOption = typer.Option(None, "--ca-cert", help="CA bundle for the registry's TLS.")


# -- build ------------------------------------------------------------------------------------


def build(
    context: Path = typer.Argument(..., help="The build context directory."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Name the image NAME[:TAG]."),
    file: str = typer.Option(None, "--file", "-f", help="Dockerfile (default CONTEXT/Dockerfile;"
                             " - reads stdin)."),
    build_arg: list[str] = typer.Option([], "--build-arg", help="Set a build-time ARG: K=V."),
    target: str = typer.Option("", "--target", help="Build up to this stage."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every step again."),
    platform: str = typer.Option("", "--platform", help="Only this machine's, linux/amd64."),
    network: str = typer.Option("host", "--network", help="RUN steps' network: host or none."),
    progress: str = typer.Option("auto", "--progress", help="auto or plain."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image id."),
    data_dir: Path = DataDir,
) -> None:
    """Build an image from a Dockerfile."""
    with _clear_errors(), _build_errors():
        options = BuildOptions(
            context=context, tags=tag, build_args=_build_args(build_arg), target=target,
            no_cache=no_cache, platform=platform, network=network,
            runc_root=data_dir / "build-runc",
            pull=_client(None, False, True, None).pull,
        )  # fmt: skip
        if file == "-":
            options.dockerfile_text = sys.stdin.read()
        elif file:
            options.dockerfile = Path(file)
        show = _BuildDisplay(quiet, plain=progress == "plain" or not console.is_terminal)
        try:
            image = asyncio.run(Builder(_store(data_dir), options, show).build())
        finally:
            show.stop()
        if quiet:
            typer.echo(image.id)
        else:
            show.finish(image.id, options.tags)


@contextmanager
def _build_errors() -> Iterator[None]:
    try:
        yield
    except (BuildError, DockerfileSyntaxError, ContextError) as e:
        print_error(str(e))
        raise typer.Exit(1) from None


def _build_args(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key:
            raise ValueError(f"--build-arg {pair!r}: use KEY=VALUE")
        if not sep:  # Docker's rule: `--build-arg K` takes K from the environment
            value = os.environ.get(key, "")
        out[key] = value
    return out


class _BuildDisplay:
    """Shows build events: Rich-styled steps with output, plain log lines, or nothing."""

    def __init__(self, quiet: bool, plain: bool) -> None:
        self.quiet = quiet
        self.plain = plain
        self.started = time.monotonic()
        self.status: Status | None = None

    def __call__(self, event: BuildEvent) -> None:
        if self.quiet:
            return
        if event.kind == "step":
            self.stop()
            self._line(f"#{event.step} [{event.step}/{event.total}] {event.text}", "bold blue")
            if not self.plain:
                self.status = console.status(f"[{event.step}/{event.total}] {event.text[:60]}")
                self.status.start()
        elif event.kind == "cached":
            self.stop()
            self._line(f"#{event.step} CACHED", "dim")
        elif event.kind == "done":
            self.stop()
            self._line(f"#{event.step} DONE {event.seconds:.1f}s", "green")
        elif event.kind == "output":
            self._line(f"  {event.text}", "dim")
        elif event.kind == "warning":
            self._line(f"WARNING: {event.text}", "yellow")

    def stop(self) -> None:
        """Stop the spinner of the running step, if any."""
        if self.status is not None:
            self.status.stop()
            self.status = None

    def _line(self, text: str, style: str) -> None:
        if self.plain:
            typer.echo(text)
        else:
            console.print(text, style=style, highlight=False, markup=False)

    def finish(self, image_id: str, tags: list[str]) -> None:
        self.stop()
        elapsed = time.monotonic() - self.started
        self._line(f"writing image {image_id} done ({elapsed:.1f}s)", "green")
        for name in tags:
            self._line(f"naming to {name} done", "green")


# -- registry verbs ---------------------------------------------------------------------------


def _client(config: Path | None, insecure: bool, tls_verify: bool,
            ca_cert: Path | None) -> RegistryClient:  # fmt: skip
    credentials = CredentialStore(config or default_config_path())
    return RegistryClient(credentials, insecure=insecure, tls_verify=tls_verify,
                          ca_file=ca_cert)  # fmt: skip


def pull(
    name: str = typer.Argument(..., help="NAME[:TAG|@DIGEST]"),
    data_dir: Path = DataDir,
    config: Path = ConfigOption,
    insecure: bool = InsecureOption,
    tls_verify: bool = TlsVerifyOption,
    ca_cert: Path = CaCertOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the reference."),
) -> None:
    """Pull an image from a registry into the store."""
    with _clear_errors(), _registry_errors():
        client = _client(config, insecure, tls_verify, ca_cert)
        with _TransferDisplay(quiet) as show:
            image = asyncio.run(client.pull(_store(data_dir), name, on_event=show))
        typer.echo(image.familiar() if quiet else f"{image.familiar()} {image.manifest_digest}")


def push(
    name: str = typer.Argument(..., help="NAME[:TAG] of an image in the store."),
    data_dir: Path = DataDir,
    config: Path = ConfigOption,
    insecure: bool = InsecureOption,
    tls_verify: bool = TlsVerifyOption,
    ca_cert: Path = CaCertOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the digest."),
) -> None:
    """Push an image from the store to its registry."""
    with _clear_errors(), _registry_errors():
        client = _client(config, insecure, tls_verify, ca_cert)
        with _TransferDisplay(quiet) as show:
            digest = asyncio.run(client.push(_store(data_dir), name, on_event=show))
        typer.echo(digest if quiet else f"{name}: digest: {digest}")


def login(
    registry: str = typer.Argument(..., help="Registry host[:port]."),
    username: str = typer.Option(None, "--username", "-u"),
    password: str = typer.Option(None, "--password", "-p"),
    password_stdin: bool = typer.Option(False, "--password-stdin"),
    config: Path = ConfigOption,
    insecure: bool = InsecureOption,
    tls_verify: bool = TlsVerifyOption,
    ca_cert: Path = CaCertOption,
) -> None:
    """Log in to a registry; the credentials go to config.json as Docker stores them."""
    with _clear_errors(), _registry_errors():
        if password_stdin:
            password = sys.stdin.read().strip()
        username = username or typer.prompt("Username")
        password = password or getpass.getpass("Password: ")
        client = _client(config, insecure, tls_verify, ca_cert)
        asyncio.run(client.login(registry, username, password))
        typer.echo("Login Succeeded")


def logout(registry: str = typer.Argument(...), config: Path = ConfigOption) -> None:
    """Remove a registry's credentials from config.json."""
    with _clear_errors():
        removed = CredentialStore(config or default_config_path()).erase(registry)
        typer.echo(f"Removing login credentials for {registry}" if removed else
                   f"Not logged in to {registry}")  # fmt: skip


@contextmanager
def _registry_errors() -> Iterator[None]:
    try:
        yield
    except (RegistryError, aiohttp.ClientError) as e:
        print_error(str(e))
        raise typer.Exit(1) from None


class _TransferDisplay:
    """Rich progress bars per blob (nothing when quiet or not a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and console.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 DownloadColumn(), TransferSpeedColumn(), console=console)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _TransferDisplay:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()

    def __call__(self, event: TransferEvent) -> None:
        if not self.enabled:
            return
        task = self.tasks.get(event.digest)
        if task is None:
            task = self.progress.add_task(f"{event.digest[7:19]} {event.action}",
                                          total=event.total or None)  # fmt: skip
            self.tasks[event.digest] = task
        self.progress.update(task, completed=event.done, description=(
            f"{event.digest[7:19]} {event.action}"))


# -- local image verbs ------------------------------------------------------------------------


def images(data_dir: Path = DataDir, output: str = image_commands.Output) -> None:
    """List images (as `dockyard image ls`)."""
    image_commands.list_images(data_dir, output)


def tag(source: str, target: str, data_dir: Path = DataDir) -> None:
    """Give image SOURCE the additional name TARGET."""
    image_commands.tag(source, target, data_dir)


def rmi(
    names: list[str] = typer.Argument(..., help="Images to remove (name or id)."),
    force: bool = typer.Option(False, "--force", "-f", help="Remove even if a container "
                               "uses it."),
    data_dir: Path = DataDir,
) -> None:
    """Remove images; refused while a container uses one, unless --force."""
    with _clear_errors():
        store = _store(data_dir)
        if not force:
            held = _held_diff_ids(store.holds_dir)
            for name in names:
                image = store.resolve(name)
                # A container holds exactly its image's layer list (ImageStore.hold).
                wanted = [layer.diff_id for layer in image.layers]
                users = sorted(h for h, ids in held.items() if ids == wanted)
                if users:
                    raise ValueError(
                        f"image {name} is used by container {users[0]}; stop it or use -f"
                    )
    image_commands.remove(names, data_dir, False)


def _held_diff_ids(holds_dir: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in holds_dir.iterdir():
        try:
            out[path.name] = [str(d) for d in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            continue
    return out


def history(
    name: str,
    data_dir: Path = DataDir,
    no_trunc: bool = typer.Option(False, "--no-trunc"),
    output: str = image_commands.Output,
) -> None:
    """Show the history of an image: one row per Dockerfile step."""
    with _clear_errors():
        image = _store(data_dir).resolve(name)
        entries = list(image.config.get("history") or [])
        layers = iter(image.layers)
        sizes = [0 if entry.get("empty_layer") else next(layers).size if image.layers else 0
                 for entry in entries]  # fmt: skip
        if output != "table":
            image_commands._print_data(entries, output)
            return
        table = Table(box=None, header_style="bold")
        for column in ("CREATED", "CREATED BY", "SIZE", "COMMENT"):
            table.add_column(column, overflow="fold" if no_trunc else "ellipsis")
        for entry, size in reversed(list(zip(entries, sizes, strict=True))):
            created_by = str(entry.get("created_by", ""))
            if not no_trunc and len(created_by) > 60:
                created_by = created_by[:57] + "..."
            table.add_row(image_commands._age(str(entry.get("created", ""))), created_by,
                          _size(size), str(entry.get("comment", "")))  # fmt: skip
        console.print(table)


def inspect(
    names: list[str] = typer.Argument(...),
    data_dir: Path = DataDir,
    output: str = typer.Option("json", "--output", "-o", help="json or yaml."),
) -> None:
    """Show images in detail: config, layers, digests."""
    image_commands.inspect(names, data_dir, output)


def save(
    names: list[str] = typer.Argument(...),
    output: Path = typer.Option(..., "--output", "-o", help="The archive to write."),
    data_dir: Path = DataDir,
) -> None:
    """Write images to a docker-archive tar (loadable by docker load and podman load)."""
    image_commands.save(names, output, "docker", data_dir)


def load(
    input_: Path = typer.Option(..., "--input", "-i", help="docker save or OCI archive."),
    data_dir: Path = DataDir,
) -> None:
    """Load images from a docker save archive or an OCI archive."""
    image_commands.load(input_, None, data_dir)  # type: ignore[arg-type]
