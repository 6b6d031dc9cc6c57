"""`dockyard image ...`: the image store's verbs (Docker's words: ls, rm, tag, inspect, save,
load), plus bootstrap of base images and OCI layout import/export.

Every verb acts directly on the store under --data-dir (default the server's,
/var/lib/dockyard), so a server on that data dir sees the change at once. Errors are printed
as one line naming the problem and what to do, with exit code 1; nothing half-done is left.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dockyard.images.archive import (
    ArchiveError,
    export_oci,
    import_oci,
    load_archive,
    save_docker_archive,
)
from dockyard.images.bootstrap import BootstrapError, bootstrap_busybox, bootstrap_debian
from dockyard.images.digest import DigestMismatchError
from dockyard.images.layers import LayerError
from dockyard.images.store import Image, ImageNotFoundError, ImageStore, ImageStoreError

DEFAULT_DATA_DIR = Path(os.environ.get("DOCKYARD_DATA_DIR", "/var/lib/dockyard"))

image_app = typer.Typer(help="Manage images: bootstrap, list, tag, remove, save, load.",
                        no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

DataDir = typer.Option(DEFAULT_DATA_DIR, "--data-dir", help="The store's data dir.")
Output = typer.Option("table", "--output", "-o", help="table, json or yaml.")


@contextmanager
def _clear_errors() -> Iterator[None]:
    try:
        yield
    except (ImageNotFoundError, ImageStoreError, ArchiveError, BootstrapError, LayerError,
            DigestMismatchError, ValueError, OSError) as e:
        print_error(e.args[0] if isinstance(e, LookupError) and e.args else str(e))
        raise typer.Exit(1) from None


def print_error(message: str) -> None:
    """Print "Error: message" on stderr, the message as written (brackets are not markup)."""
    err_console.print(Text.assemble(("Error:", "red"), " ", message), highlight=False)


def _store(data_dir: Path) -> ImageStore:
    return ImageStore(data_dir)


@image_app.command("bootstrap")
def bootstrap(
    name: str = typer.Argument(..., help="busybox, or debian:<suite> (debian:bookworm)."),
    data_dir: Path = DataDir,
    mirror: str = typer.Option(None, "--mirror", help="Debian mirror (default: apt's)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Default DATA_DIR/cache."),
) -> None:
    """Make a base image on this machine: busybox-static or a debootstrap'ed Debian."""
    with _clear_errors():
        store = _store(data_dir)
        base, _, tag = name.partition(":")
        if base == "busybox" and tag in ("", "latest"):
            image = bootstrap_busybox(store)
        elif base == "debian":
            with console.status(f"bootstrapping debian:{tag or 'bookworm'}") as status:
                image = bootstrap_debian(
                    store, tag or "bookworm", mirror, _progress(status.update), cache_dir
                )
        else:
            raise ValueError(f"cannot bootstrap {name!r}: choose busybox or debian:<suite>")
        typer.echo(f"{image.familiar()} {image.manifest_digest}")


def _progress(update: Callable[[str], None]) -> Callable[[str], None]:
    def show(line: str) -> None:
        typer.secho(line, dim=True)
        update(line[:80])

    return show


@image_app.command("ls")
def list_images(data_dir: Path = DataDir, output: str = Output) -> None:
    """List images: repository, tag, image id, created, size."""
    with _clear_errors():
        images = _store(data_dir).list_images()
        if output != "table":
            _print_data([_summary(i) for i in images], output)
            return
        table = Table(box=None, header_style="bold")
        for column in ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"):
            table.add_column(column)
        for image in images:
            repo, _, tag = image.familiar().rpartition(":")
            table.add_row(repo, tag, image.id[7:19], _age(image.created), _size(image.size))
        console.print(table)


@image_app.command("rm")
def remove(
    names: list[str] = typer.Argument(..., help="Images to remove (name or id)."),
    data_dir: Path = DataDir,
    no_prune: bool = typer.Option(False, "--no-prune", help="Keep unused blobs and layers."),
) -> None:
    """Remove image names; then delete blobs and layers no image uses any more."""
    with _clear_errors():
        store = _store(data_dir)
        for name in names:
            for ref in store.remove(name):
                typer.echo(f"Untagged: {ref}")
        if not no_prune:
            _report_gc(store, grace_seconds=0)


@image_app.command("prune")
def prune(data_dir: Path = DataDir) -> None:
    """Delete blobs and unpacked layers that no image uses."""
    with _clear_errors():
        _report_gc(_store(data_dir), grace_seconds=0)


def _report_gc(store: ImageStore, grace_seconds: float) -> None:
    result = store.garbage_collect(grace_seconds=grace_seconds)
    for digest in result.blobs + result.layers:
        typer.echo(f"Deleted: {digest}")
    typer.echo(f"Reclaimed {_size(result.freed_bytes)} of blobs")


@image_app.command("tag")
def tag(source: str, target: str, data_dir: Path = DataDir) -> None:
    """Give image SOURCE the additional name TARGET."""
    with _clear_errors():
        image = _store(data_dir).tag(source, target)
        typer.echo(f"{image.familiar()} {image.manifest_digest}")


@image_app.command("inspect")
def inspect(
    names: list[str] = typer.Argument(...),
    data_dir: Path = DataDir,
    output: str = typer.Option("json", "--output", "-o", help="json or yaml."),
) -> None:
    """Show images in detail: config, layers, digests."""
    with _clear_errors():
        store = _store(data_dir)
        _print_data([_details(store.resolve(name)) for name in names], output)


@image_app.command("layers")
def layers(name: str, data_dir: Path = DataDir) -> None:
    """Print the image's unpacked layer dirs, bottom to top (unpacking them if needed)."""
    with _clear_errors():
        store = _store(data_dir)
        for path in store.unpacked_layers(store.resolve(name)):
            typer.echo(str(path))


@image_app.command("save")
def save(
    names: list[str] = typer.Argument(...),
    output: Path = typer.Option(..., "--output", "-o", help="The archive to write."),
    fmt: str = typer.Option("docker", "--format", help="docker (docker save) or oci."),
    data_dir: Path = DataDir,
) -> None:
    """Write images to a tar archive (docker save format, or an OCI layout)."""
    with _clear_errors():
        store = _store(data_dir)
        if fmt == "docker":
            images = save_docker_archive(store, names, output)
        elif fmt == "oci":
            output = output if output.suffix == ".tar" else output.with_suffix(".tar")
            images = export_oci(store, names, output)
        else:
            raise ValueError(f"unknown format {fmt!r}: use docker or oci")
        typer.echo(f"saved {len(images)} image(s) to {output}")


@image_app.command("load")
def load(
    input_: Path = typer.Option(..., "--input", "-i", help="docker save or OCI archive."),
    name: str = typer.Option(None, "--name", help="Name for an image the archive leaves unnamed."),
    data_dir: Path = DataDir,
) -> None:
    """Load images from a docker save archive or an OCI archive."""
    with _clear_errors():
        for image in load_archive(_store(data_dir), input_, name):
            typer.echo(f"Loaded image: {image.familiar()}")


@image_app.command("import-oci")
def import_layout(
    source: Path = typer.Argument(..., help="An OCI image layout directory (or its tar)."),
    name: str = typer.Option(None, "--name", help="Name, if the layout gives only a tag."),
    data_dir: Path = DataDir,
) -> None:
    """Import the images of an OCI image layout."""
    with _clear_errors():
        for image in import_oci(_store(data_dir), source, name):
            typer.echo(f"Imported image: {image.familiar()}")


@image_app.command("export-oci")
def export_layout(
    names: list[str] = typer.Argument(...),
    output: Path = typer.Option(..., "--output", "-o", help="A new directory, or a .tar."),
    data_dir: Path = DataDir,
) -> None:
    """Write images as an OCI image layout (skopeo: oci:DIR:<reference>)."""
    with _clear_errors():
        images = export_oci(_store(data_dir), names, output)
        typer.echo(f"exported {len(images)} image(s) to {output}")


def _summary(image: Image) -> dict[str, Any]:
    return {
        "reference": image.reference,
        "id": image.id,
        "digest": image.manifest_digest,
        "created": image.created,
        "size": image.size,
    }


def _details(image: Image) -> dict[str, Any]:
    return {
        "Id": image.id,
        "RepoTags": [image.familiar()],
        "Reference": image.reference,
        "Digest": image.manifest_digest,
        "Created": image.created,
        "Size": image.size,
        "Architecture": image.config.get("architecture"),
        "Os": image.config.get("os"),
        "Config": image.run_config,
        "RootFS": {"Type": "layers", "Layers": [layer.diff_id for layer in image.layers]},
        "Layers": [
            {"digest": layer.digest, "diffID": layer.diff_id, "size": layer.size,
             "mediaType": layer.media_type}
            for layer in image.layers
        ],
    }


def _print_data(data: Any, output: str) -> None:
    if output == "json":
        typer.echo(json.dumps(data, indent=2))
    elif output == "yaml":
        typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
    else:
        raise ValueError(f"unknown output {output!r}: use table, json or yaml")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.3g}{unit}" if unit != "B" else f"{n}B"
        size /= 1000
    return f"{n}B"


def _age(created: str) -> str:
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return created or "-"
    seconds = (datetime.now(UTC) - when).total_seconds()
    for unit, length in (("years", 31_536_000), ("days", 86_400), ("hours", 3600),
                         ("minutes", 60)):
        if seconds >= length:
            return f"{int(seconds // length)} {unit} ago"
    return "just now"
