"""What every client verb of the `dockyard` command shares: kubeconfig options, the connection,
resource names as people type them, and errors turned into one line and an exit code.

Kubeconfig conventions are kubectl's: `--kubeconfig`, else every file in $KUBECONFIG, else
~/.kube/config; dockyard adds one last fallback, /var/lib/dockyard/kubeconfig, the admin
kubeconfig a default `dockyard server` writes, so a person on the server machine needs no setup.

Invariants:
- Client verbs reach the cluster only through ``dockyard.client`` (standard Kubernetes paths),
  so they work against any Kubernetes api server as well as dockyard's.
- Every failure ends as one stderr line starting "error: " and an exit code: 1 for the
  kubectl-style verbs (as kubectl), 125 for the docker-style verbs (Docker's code for errors of
  the daemon or the CLI itself). No traceback reaches a person.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import inspect
import os
import re
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
import typer.core

from dockyard.client import ApiClient, ApiError, KubeconfigError, ServerUnreachableError
from dockyard.client.config import ClientConfig, load_kubeconfig
from dockyard.objects.resources import RESOURCES, ResourceInfo, resolve

T = TypeVar("T")
Obj = dict[str, Any]

SERVER_KUBECONFIG = Path("/var/lib/dockyard/kubeconfig")
KUBE_ERROR = 1  # kubectl exits 1 on any error
DOCKER_ERROR = 125  # docker: the daemon or the CLI failed (not the container)

KubeconfigOption = typer.Option(None, "--kubeconfig", help="Kubeconfig file to use.")
ContextOption = typer.Option(None, "--context", help="Kubeconfig context to use.")
NamespaceOption = typer.Option(None, "--namespace", "-n", help="Namespace (default: context's).")
AllNamespacesOption = typer.Option(False, "--all-namespaces", "-A",
                                   help="Across all namespaces.")
OutputOption = typer.Option("", "--output", "-o", help="json, yaml, name (get: also wide).")


_FLAGS: dict[str, tuple[type, Any]] = {
    "namespace": (str, NamespaceOption),
    "all_namespaces": (bool, AllNamespacesOption),
    "kubeconfig": (str, KubeconfigOption),
    "context": (str, ContextOption),
}

# Click's UsageError (unknown flag, missing argument) is the base of typer.BadParameter.
UsageError: type[Exception] = typer.BadParameter.__mro__[1]


class KubeCommand(typer.core.TyperCommand):
    """A verb whose usage errors exit 1, as kubectl's do (Click would exit 2)."""

    usage_exit_code = KUBE_ERROR

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None,
                     **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageError as e:
            e.exit_code = self.usage_exit_code  # type: ignore[attr-defined]
            raise


class DockerCommand(KubeCommand):
    """A docker-style verb: usage errors exit 125, as Docker's CLI errors do."""

    usage_exit_code = DOCKER_ERROR



class CliError(Exception):
    """A failure the person can act on: printed as "error: <message>" with an exit code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Kube:
    """Where and as whom to talk: the chosen kubeconfig, context and namespace."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False

    def config(self) -> ClientConfig:
        """Load the client configuration by kubectl's rules plus dockyard's server fallback."""
        return load_kubeconfig(self._path(), self.context)

    def _path(self) -> str | None:
        if self.kubeconfig or os.environ.get("KUBECONFIG"):
            return self.kubeconfig
        if not Path("~/.kube/config").expanduser().is_file() and SERVER_KUBECONFIG.is_file():
            return str(SERVER_KUBECONFIG)
        return None

    def client(self) -> tuple[ApiClient, str]:
        """Return an ApiClient and the namespace to work in (flag, else the context's)."""
        config = self.config()
        return ApiClient(config, user_agent="dockyard-cli"), self.namespace or config.namespace


def kube_flags(*, namespace: bool = True, all_namespaces: bool = False
               ) -> Callable[[Callable[..., T]], Callable[..., T]]:  # fmt: skip
    """Give a verb kubectl's connection flags, passed to it as one ``kube: Kube`` argument.

    --kubeconfig and --context always, --namespace unless namespace=False, -A when
    all_namespaces=True; they follow the verb's own parameters in its --help.
    """
    names = [name for name, wanted in (("namespace", namespace),
                                       ("all_namespaces", all_namespaces),
                                       ("kubeconfig", True), ("context", True)) if wanted]
    flags = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=_FLAGS[name][1],
                               annotation=_FLAGS[name][0]) for name in names]  # fmt: skip

    def decorate(verb: Callable[..., T]) -> Callable[..., T]:
        signature = inspect.signature(verb, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "kube"]

        @functools.wraps(verb)
        def with_kube(*args: Any, **kwargs: Any) -> T:
            kube = Kube(**{name: kwargs.pop(name) for name in names})
            return verb(*args, kube=kube, **kwargs)

        # Typer reads the parameters from the signature: the verb's own, then the flags.
        with_kube.__signature__ = signature.replace(parameters=own + flags)  # type: ignore[attr-defined]
        return with_kube

    return decorate


def run(main: Callable[[], Coroutine[Any, Any, T]], exit_code: int = KUBE_ERROR) -> T:
    """Run one verb's coroutine; print any failure as one "error:" line and exit."""
    with errors(exit_code):
        return asyncio.run(main())


def run_on_api(kube: Kube, work: Callable[[ApiClient, str], Coroutine[Any, Any, T]],
               exit_code: int = KUBE_ERROR) -> T:  # fmt: skip
    """Run work(api, namespace) on a connection made as kube says, closed after; errors as run."""

    async def main() -> T:
        api, ns = kube.client()
        async with api:
            return await work(api, ns)

    return run(main, exit_code)


@contextmanager
def errors(exit_code: int = KUBE_ERROR) -> Iterator[None]:
    """Turn client, kubeconfig and CLI errors into one stderr line and an exit code."""
    try:
        yield
    except CliError as e:
        fail(str(e), e.code if e.code is not None else exit_code)
    except ServerUnreachableError as e:
        fail(str(e), exit_code)
    except KubeconfigError as e:
        fail(str(e), exit_code)
    except ApiError as e:
        fail(api_message(e), exit_code)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def fail(message: str, code: int) -> NoReturn:
    """Print "error: message" on stderr and exit with code."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def api_message(e: ApiError) -> str:
    """Phrase an api server error the way kubectl does (Status message plus field causes)."""
    if e.reason == "NotFound" and e.details.get("name"):
        kind = e.details.get("kind") or "object"
        group = e.details.get("group")
        what = f"{kind}.{group}" if group else kind
        return f'{what} "{e.details["name"]}" not found'
    text = e.message
    causes = [str(c["message"]) for c in e.causes if c.get("message")]
    extra = [c for c in causes if c not in text]
    if extra:
        text += " (" + "; ".join(extra) + ")"
    return text


# -- resource names ------------------------------------------------------------------------


def resource(name: str) -> ResourceInfo:
    """Resolve a resource as people type it ("deploy", "pods", "svc"); suggest on a typo."""
    info = resolve(name)
    if info is not None:
        return info
    words = sorted({w for r in RESOURCES for w in (r.plural, r.singular, *r.short_names)})
    close = difflib.get_close_matches(name.lower(), words, n=1, cutoff=0.6)
    hint = ""
    if close:
        hint = f" — did you mean {_plural_of(close[0])}?"
    raise CliError(f'the server doesn\'t have a resource type "{name}"{hint}')


def complete_kinds(incomplete: str) -> list[str]:
    """Offer resource type names for shell completion (after a comma: the next type)."""
    head, _, last = incomplete.rpartition(",")
    prefix = f"{head}," if head else ""
    words = sorted({w for r in RESOURCES for w in (r.plural, *r.short_names)})
    return [prefix + w for w in words if w.startswith(last.lower())]


def _plural_of(word: str) -> str:
    info = resolve(word)
    return info.plural if info is not None else word


def qualified(info: ResourceInfo) -> str:
    """Return kubectl's lower-case resource name for messages: "deployment.apps", "pod"."""
    return f"{info.kind.lower()}.{info.group}" if info.group else info.kind.lower()


def split_targets(args: list[str]) -> list[tuple[ResourceInfo, str | None]]:
    """Parse `KIND NAME...`, `KIND/NAME...` or `KIND1,KIND2` into (resource, name) pairs."""
    if not args:
        raise CliError("you must specify the type of resource, e.g. `get pods` or `get deploy/web`")
    if "/" in args[0]:
        out: list[tuple[ResourceInfo, str | None]] = []
        for arg in args:
            kind, sep, name = arg.partition("/")
            if not sep or not name:
                raise CliError(f"there is no need to specify a resource type as a separate "
                               f"argument when passing arguments in resource/name form: {arg}")
            out.append((resource(kind), name))
        return out
    kinds = [resource(k) for k in args[0].split(",") if k]
    names = args[1:]
    if names and len(kinds) > 1:
        raise CliError("names can only be given with a single resource type")
    if not names:
        return [(k, None) for k in kinds]
    return [(kinds[0], n) for n in names]


def one_target(arg: str, default_kind: str = "") -> tuple[ResourceInfo, str]:
    """Parse one `KIND/NAME` (or a bare NAME when a default kind is given)."""
    kind, sep, name = arg.partition("/")
    if not sep:
        if not default_kind:
            raise CliError(f"{arg}: give the object as TYPE/NAME, e.g. deployment/{arg}")
        kind, name = default_kind, arg
    if not name:
        raise CliError(f"{arg}: the object name is missing")
    return resource(kind), name


def namespace_for(info: ResourceInfo, namespace: str) -> str | None:
    """Return the namespace to address a resource in (None when cluster-scoped)."""
    return namespace if info.namespaced else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float:
    """Parse a kubectl-style duration ("180", "180s", "3m", "1h30m", "500ms") into seconds."""
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"{text!r} is not a duration (examples: 30, 30s, 5m, 1h30m)")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
