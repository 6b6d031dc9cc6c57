"""The Dockerfile builder: stages, instructions, the layer cache, the final OCI image.

`Builder(store, options, on_event).build()` parses the Dockerfile, builds the stages the
target needs (in file order), and names the result with every tag.

Invariants:
- One layer per filesystem-changing step (RUN, COPY, ADD, WORKDIR), computed as the step's
  overlayfs upper dir (builder_run.py, layerdiff.py); a step that changes nothing adds no
  layer and its history entry says empty_layer. Config-only steps never touch the disk.
- Reproducible: config `created`, history times and every file time in a layer are
  SOURCE_DATE_EPOCH (default 0), so the same inputs give the same digests.
- Cache keys chain from the base image's manifest digest: each step's key is
  sha256(parent key, the instruction after expansion, and what else it reads: RUN's env,
  user, working dir and network; COPY/ADD's content digest of the files read, or the source
  stage's key). A hit does no work; a change re-runs that step and every later one.
- A failing step raises BuildError naming the line; the step's container, mount and upper
  dir are gone (builder_run.py) and no layer or cache entry is recorded for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import re
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.images import oci
from dockyard.images.buildcache import BuildCache, chain_key
from dockyard.images.builder_config import (
    CONFIG_INSTRUCTIONS,
    apply_config_instruction,
    command_argv,
    env_map,
    shell_of,
)
from dockyard.images.builder_fs import (
    BuildFsError,
    Ownership,
    archive_kind,
    copy_tree,
    extract_archive,
    make_workdir,
    parse_chmod,
    resolve_chown,
    resolve_in_rootfs,
    walk_host,
    write_file,
)
from dockyard.images.builder_run import RunStepError, StepRootfs, run_step, step_rootfs
from dockyard.images.context import BuildContext, ContextError, Source
from dockyard.images.dockerfile import (
    Dockerfile,
    DockerfileSyntaxError,
    Instruction,
    Stage,
    expand_word,
    expand_words,
    parse_dockerfile,
    parse_trigger,
)
from dockyard.images.layerdiff import write_layer
from dockyard.images.layers import LayerError
from dockyard.images.store import Image, ImageNotFoundError, ImageStore, LayerDescriptor
from dockyard.runtime.runc import Runc
from dockyard.runtime.spec import SpecError

PREDEFINED_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})  # fmt: skip
_VAR_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(:?[-+?]?)")
FS_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD", "WORKDIR"})
URL_TIMEOUT = 60.0


class BuildError(RuntimeError):
    """A build that failed; the message names the line and the cause."""


@dataclass
class BuildOptions:
    """What `dockyard build` was asked."""

    context: Path
    dockerfile: Path | None = None
    dockerfile_text: str | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    platform: str = ""
    network: str = "host"
    source_date_epoch: int | None = None
    runc_root: Path = Path("/run/dockyard/build-runc")
    # Pulls a missing base image that names a registry (host[:port]/...); None: never pull.
    pull: Callable[[ImageStore, str], Awaitable[Image]] | None = None


@dataclass(frozen=True)
class BuildEvent:
    """Progress: kind is step, cached, output, done, warning or stage."""

    kind: str
    text: str = ""
    step: int = 0
    total: int = 0
    seconds: float = 0.0


@dataclass
class StageState:
    """A stage being built: its run config, history, layers, cache key and ARGs in scope."""

    name: str
    config: dict[str, Any]
    history: list[dict[str, Any]]
    layers: list[LayerDescriptor]
    key: str
    args: dict[str, str] = field(default_factory=dict)
    cmd_inherited: bool = True
    author: str = ""


class Builder:
    """Builds one Dockerfile into the store."""

    def __init__(self, store: ImageStore, options: BuildOptions,
                 on_event: Callable[[BuildEvent], None] | None = None) -> None:  # fmt: skip
        self.store = store
        self.options = options
        self.on_event = on_event or (lambda event: None)
        self.cache = BuildCache(store)
        self.runc = Runc(options.runc_root)
        self.work_dir = store.data_dir / "build"
        epoch = options.source_date_epoch
        if epoch is None:
            epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0)
        self.epoch = epoch
        self.created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.states: dict[int, StageState] = {}
        self.step = 0
        self.total = 0
        self.used_args: set[str] = set()

    # -- the whole build --------------------------------------------------------------------

    async def build(self) -> Image:
        """Build the target stage and name it with every tag; return the image."""
        self._check_platform()
        dockerfile = self._parse()
        self.escape = dockerfile.escape
        dockerfile_path = self.options.dockerfile or self.options.context / "Dockerfile"
        self.context = await asyncio.to_thread(
            BuildContext.load, self.options.context, dockerfile_path,
            self.store.root / "buildcache-files.json",
        )  # fmt: skip
        self.global_args = self._global_args(dockerfile)
        target = dockerfile.stage(self.options.target) if self.options.target else \
            dockerfile.stages[-1]
        stages = self._needed_stages(dockerfile, target)
        self.total = sum(1 + len(s.instructions) for s in stages)
        self.dockerfile = dockerfile
        for stage in stages:
            self.states[stage.index] = await self._build_stage(stage)
        self._warn_unused_args()
        return await asyncio.to_thread(self._write_image, self.states[target.index])

    def _check_platform(self) -> None:
        wanted = self.options.platform
        host = f"linux/{oci.host_architecture()}"
        if wanted and wanted != host:
            raise BuildError(f"--platform {wanted}: this machine builds only {host}")
        if self.options.network not in ("host", "none"):
            raise BuildError(f"--network {self.options.network}: choose host or none")

    def _parse(self) -> Dockerfile:
        text = self.options.dockerfile_text
        if text is None:
            path = self.options.dockerfile or self.options.context / "Dockerfile"
            try:
                text = path.read_text()
            except OSError as e:
                raise BuildError(f"cannot read the Dockerfile {path}: {e.strerror}") from None
        return parse_dockerfile(text)

    def _platform_args(self) -> dict[str, str]:
        arch = oci.host_architecture()
        return {"TARGETPLATFORM": f"linux/{arch}", "TARGETOS": "linux", "TARGETARCH": arch,
                "TARGETVARIANT": "", "BUILDPLATFORM": f"linux/{arch}", "BUILDOS": "linux",
                "BUILDARCH": arch, "BUILDVARIANT": ""}  # fmt: skip

    def _global_args(self, dockerfile: Dockerfile) -> dict[str, str]:
        values = self._platform_args()
        for inst in dockerfile.global_args:
            for name, value in self._arg_values(inst, values):
                if value is not None:
                    values[name] = value
        return values

    def _arg_values(self, inst: Instruction, env: dict[str, str]) -> list[
            tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for word in expand_words(inst.value, env, self.escape, inst.line):
            name, sep, default = word.partition("=")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise inst.error(f"invalid ARG name {name!r}")
            if name in self.options.build_args:
                self.used_args.add(name)
                out.append((name, self.options.build_args[name]))
            elif sep:
                out.append((name, default))
            else:
                out.append((name, None))
        return out

    def _needed_stages(self, dockerfile: Dockerfile, target: Stage) -> list[Stage]:
        needed: set[int] = set()

        def visit(stage: Stage) -> None:
            if stage.index in needed:
                return
            needed.add(stage.index)
            deps = [stage.base] + [
                inst.flags["from"] for inst in stage.instructions
                if inst.keyword in ("COPY",) and "from" in inst.flags
            ]  # fmt: skip
            for dep in deps:
                found = self._stage_named(dockerfile, dep, before=stage.index)
                if found is not None:
                    visit(found)

        visit(target)
        return [s for s in dockerfile.stages if s.index in needed]

    @staticmethod
    def _stage_named(dockerfile: Dockerfile, name: str, before: int) -> Stage | None:
        for stage in dockerfile.stages[:before]:
            if stage.name == name.lower() or str(stage.index) == name:
                return stage
        return None

    def _warn_unused_args(self) -> None:
        unused = sorted(set(self.options.build_args) - self.used_args - PREDEFINED_ARGS)
        if unused:
            self.on_event(BuildEvent("warning", f"build-args {', '.join(unused)} were not "
                                     "consumed: no ARG declares them"))  # fmt: skip

    # -- stages ------------------------------------------------------------------------------

    async def _build_stage(self, stage: Stage) -> StageState:
        state = await self._from(stage)
        for trigger in list(state.config.pop("OnBuild", None) or []):
            await self._instruction(state, parse_trigger(trigger, stage.from_instruction.line))
        for inst in stage.instructions:
            await self._instruction(state, inst)
        return state

    async def _from(self, stage: Stage) -> StageState:
        inst = stage.from_instruction
        base = self._expand_from(stage.base, inst)
        self._start(f"[{stage.name or stage.index}] FROM {base}")
        earlier = self._stage_named(self.dockerfile, base, before=stage.index)
        if earlier is not None:
            src = self.states[earlier.index]
            return StageState(stage.name, dict(src.config), list(src.history),
                              list(src.layers), src.key, cmd_inherited=True)  # fmt: skip
        if base == "scratch":
            return StageState(stage.name, {}, [], [], chain_key("scratch"))
        image = await self._base_image(base, inst)
        await asyncio.to_thread(self.store.unpacked_layers, image)
        history = list(image.config.get("history") or [])
        return StageState(stage.name, image.run_config, history, list(image.layers),
                          chain_key("image", image.manifest_digest))  # fmt: skip

    async def _base_image(self, base: str, inst: Instruction) -> Image:
        """Return the base image from the store, pulling it first if it names a registry."""
        try:
            return await asyncio.to_thread(self.store.resolve, base)
        except (ImageNotFoundError, ValueError) as e:
            missing = e.args[0] if e.args else str(e)
        if _names_registry(base) and self.options.pull is not None:
            self.on_event(BuildEvent("output", f"pulling {base}"))
            try:
                return await self.options.pull(self.store, base)
            except Exception as e:  # any pull failure: say both what was missing and why
                missing += f"; pulling it failed: {e}"
        raise BuildError(
            f"line {inst.line}: FROM {base}: {missing}; pull it (dockyard pull) or make it "
            "(dockyard image bootstrap)"
        )

    def _expand_from(self, base: str, inst: Instruction) -> str:
        for match in _VAR_REF.finditer(base):
            name, modifier = match.group(1), match.group(2)
            if not self.global_args.get(name) and not modifier:
                raise BuildError(
                    f"line {inst.line}: FROM {base}: build-arg {name} is not set; declare it "
                    f"with ARG before FROM and pass --build-arg {name}=VALUE"
                )
        value = expand_word(base, self.global_args, self.escape, inst.line)
        if not value:
            raise BuildError(f"line {inst.line}: FROM {base}: the base name is empty")
        return value

    # -- one instruction ---------------------------------------------------------------------

    async def _instruction(self, state: StageState, inst: Instruction) -> None:
        try:
            await self._dispatch(state, inst)
        except (DockerfileSyntaxError, BuildError):
            raise
        except RunStepError as e:
            output = "\n".join(e.output)
            raise BuildError(f"line {inst.line}: RUN failed: {e}\n{output}".rstrip()) from None
        except (ContextError, BuildFsError, SpecError, LayerError, OSError, ValueError) as e:
            raise BuildError(f"line {inst.line}: {inst.keyword}: {e}") from None

    async def _dispatch(self, state: StageState, inst: Instruction) -> None:
        if inst.keyword == "ARG":
            self._start(f"ARG {inst.value}")
            self._arg(state, inst)
        elif inst.keyword in CONFIG_INSTRUCTIONS:
            self._start(f"{inst.keyword} {inst.value}")
            text = apply_config_instruction(
                state.config, inst, self._env(state), self.escape, state.cmd_inherited
            )
            if inst.keyword == "CMD":
                state.cmd_inherited = False
            if inst.keyword == "MAINTAINER":
                state.author = inst.value.strip()
            state.key = chain_key(state.key, text)
            state.history.append(self._history(text, empty=True))
        elif inst.keyword == "RUN":
            await self._run(state, inst)
        elif inst.keyword == "WORKDIR":
            await self._workdir(state, inst)
        else:
            await self._copy(state, inst)

    def _arg(self, state: StageState, inst: Instruction) -> None:
        for name, value in self._arg_values(inst, self._env(state)):
            if value is None:
                value = self.global_args.get(name)
            if value is not None:
                state.args[name] = value
            state.key = chain_key(state.key, "ARG", name, value)

    def _env(self, state: StageState) -> dict[str, str]:
        """Return the expansion env: ARGs in scope, then ENV (ENV wins, as Docker)."""
        return {**state.args, **env_map(state.config)}

    def _run_env(self, state: StageState) -> dict[str, str]:
        env = dict(state.args)
        for name in PREDEFINED_ARGS & set(self.options.build_args):
            self.used_args.add(name)
            env[name] = self.options.build_args[name]
        env.update(env_map(state.config))
        return env

    # -- filesystem steps --------------------------------------------------------------------

    async def _run(self, state: StageState, inst: Instruction) -> None:
        argv = self._run_argv(state, inst)
        env = self._run_env(state)
        user = str(state.config.get("User") or "")
        workdir = str(state.config.get("WorkingDir") or "/")
        network = inst.flags.get("network", self.options.network)
        if network not in ("host", "none", "default"):
            raise inst.error(f"--network={network}: choose host or none")
        network = self.options.network if network == "default" else network
        text = f"RUN {' '.join(argv)}" if inst.json_args() is None else f"RUN {argv}"
        key = chain_key(state.key, "RUN", argv, sorted(env.items()), user, workdir, network)

        async def action(step: StepRootfs) -> None:
            await asyncio.to_thread(make_workdir, step.rootfs, workdir)
            await run_step(step, self.runc, argv, env, user, workdir, network,
                           lambda line: self.on_event(BuildEvent("output", line)))

        await self._fs_step(state, f"RUN {inst.value.strip()}", text, key, action,
                            with_init=True)  # fmt: skip

    def _run_argv(self, state: StageState, inst: Instruction) -> list[str]:
        if not inst.heredocs:
            return command_argv(state.config, inst)
        shell = shell_of(state.config)
        first = inst.heredocs[0]
        if re.fullmatch(r"<<-?['\"]?\w+['\"]?", inst.value.strip()):
            script = first.content
            if script.startswith("#!"):
                interpreter = script.splitlines()[0][2:].split()
                return [*interpreter, "-c", script] if interpreter else shell + [script]
            return shell + [script]
        body = inst.value.strip()
        for doc in inst.heredocs:
            body += "\n" + doc.content + doc.name
        return shell + [body]

    async def _workdir(self, state: StageState, inst: Instruction) -> None:
        path = expand_word(inst.value.strip(), self._env(state), self.escape, inst.line)
        current = str(state.config.get("WorkingDir") or "/")
        workdir = posixpath.normpath(posixpath.join(current, path))
        state.config["WorkingDir"] = workdir
        key = chain_key(state.key, "WORKDIR", workdir)

        async def action(step: StepRootfs) -> None:
            await asyncio.to_thread(make_workdir, step.rootfs, workdir)

        await self._fs_step(state, f"WORKDIR {path}", f"WORKDIR {workdir}", key, action)

    async def _fs_step(
        self, state: StageState, label: str, history: str, key: str,
        action: Callable[[StepRootfs], Any], with_init: bool = False,
    ) -> None:  # fmt: skip
        self._start(label)
        started = time.monotonic()
        hit = None if self.options.no_cache else self.cache.get(key)
        if hit is not None:
            layer = hit.layer
            self.on_event(BuildEvent("cached", label, self.step, self.total))
        else:
            layers = await asyncio.to_thread(self._unpacked, state.layers)
            async with step_rootfs(self.work_dir, layers, with_init) as step:
                await action(step)
                layer = await asyncio.to_thread(self._commit_layer, step.upper)
            self.cache.put(key, layer)
            self.on_event(BuildEvent("done", label, self.step, self.total,
                                     time.monotonic() - started))  # fmt: skip
        state.key = key
        if layer is not None:
            state.layers.append(layer)
        state.history.append(self._history(history, empty=layer is None))

    def _unpacked(self, layers: list[LayerDescriptor]) -> list[Path]:
        return [self.store.unpack_layer(layer) for layer in layers]

    def _commit_layer(self, upper: Path) -> LayerDescriptor | None:
        tmp = self.store.tmp_dir / f"build-layer.{os.getpid()}.{time.monotonic_ns()}"
        try:
            written = write_layer(upper, tmp, self.epoch)
            if written is None:
                return None
            if not self.store.has_blob(written.digest):
                os.chmod(tmp, 0o644)
                os.rename(tmp, self.store.blob_path(written.digest))
            descriptor = LayerDescriptor(written.digest, self.store.diff_id(written.digest),
                                         written.size, oci.OCI_LAYER_GZIP)  # fmt: skip
            self.store.unpack_layer(descriptor)
            return descriptor
        finally:
            tmp.unlink(missing_ok=True)

    # -- COPY and ADD ------------------------------------------------------------------------

    async def _copy(self, state: StageState, inst: Instruction) -> None:
        env = self._env(state)
        args = inst.json_args()
        words = [expand_word(a, env, self.escape, inst.line) for a in args] if args is not None \
            else expand_words(inst.value, env, self.escape, inst.line)
        heredoc_names = {f"<<{d.name}": d for d in inst.heredocs}
        heredoc_names.update({f"<<-{d.name}": d for d in inst.heredocs})
        if len(words) < 2:
            raise inst.error("requires at least two arguments: source(s) and destination")
        sources, dest = words[:-1], words[-1]
        workdir = str(state.config.get("WorkingDir") or "/")
        dest_is_dir = dest.endswith("/") or dest in (".", "..")
        dest = posixpath.join(workdir, dest)
        if len(sources) > 1 and not dest_is_dir:
            raise inst.error("with more than one source, the destination must end with /")
        plan = await self._copy_plan(state, inst, sources, heredoc_names)
        key = chain_key(state.key, inst.keyword, sorted(inst.flags.items()), sources, dest,
                        dest_is_dir, plan.content)  # fmt: skip

        async def action(step: StepRootfs) -> None:
            async with plan.open() as source_root:
                await asyncio.to_thread(self._do_copy, step.rootfs, inst, plan, source_root,
                                        dest, dest_is_dir)  # fmt: skip

        text = f"{inst.keyword} {inst.value.strip()}"
        await self._fs_step(state, text, f"{text} # buildkit", key, action)

    async def _copy_plan(self, state: StageState, inst: Instruction, sources: list[str],
                         heredocs: dict[str, Any]) -> _CopyPlan:  # fmt: skip
        plan = _CopyPlan(self, inst, sources, heredocs)
        source_from = inst.flags.get("from")
        if source_from:
            if inst.keyword == "ADD":
                raise inst.error("--from is only for COPY")
            await asyncio.to_thread(plan.from_stage_or_image, source_from)
        else:
            await asyncio.to_thread(plan.from_context)
        return plan

    def _do_copy(self, rootfs: Path, inst: Instruction, plan: _CopyPlan,
                 source_root: Path | None, dest: str, dest_is_dir: bool) -> None:  # fmt: skip
        owner = self._ownership(rootfs, inst, keep=source_root is not None)
        if not dest_is_dir and len(plan.items) > 1:
            raise BuildFsError(f"{len(plan.items)} sources match: the destination {dest} must "
                               "be a directory ending with /")  # fmt: skip
        if not dest_is_dir:
            dest_is_dir = resolve_in_rootfs(rootfs, dest).is_dir()
        for item in plan.items:
            plan.copy_item(item, rootfs, source_root, dest, dest_is_dir, owner)

    def _ownership(self, rootfs: Path, inst: Instruction, keep: bool) -> Ownership:
        chmod = parse_chmod(inst.flags["chmod"]) if "chmod" in inst.flags else None
        if "chown" in inst.flags:
            uid, gid = resolve_chown(rootfs, inst.flags["chown"])
            return Ownership(uid, gid, chmod)
        return Ownership(None, None, chmod) if keep else Ownership(0, 0, chmod)

    # -- events and the result ---------------------------------------------------------------

    def _start(self, text: str) -> None:
        self.step += 1
        self.on_event(BuildEvent("step", text, self.step, self.total))

    def _history(self, created_by: str, empty: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"created": self.created, "created_by": created_by,
                                 "comment": "buildkit.dockerfile.v0"}  # fmt: skip
        if empty:
            entry["empty_layer"] = True
        return entry

    def _write_image(self, state: StageState) -> Image:
        config: dict[str, Any] = {
            "created": self.created,
            "architecture": oci.host_architecture(),
            "os": "linux",
            "config": {k: v for k, v in state.config.items() if v not in (None, [], {}, "")},
            "history": state.history,
        }
        if state.author:
            config["author"] = state.author
        tags = self.options.tags or []
        if not tags:
            digest = hashlib.sha256(repr(config).encode()).hexdigest()[:12]
            tags = [f"localhost/dockyard-build:{digest}"]
        image = self.store.create_image(tags[0], config, state.layers)
        for tag in tags[1:]:
            self.store.tag(image.reference, tag)
        return image


def _names_registry(base: str) -> bool:
    """Return True if `base` starts with a registry host (`host:port/x`, `a.b/x`)."""
    first, sep, _ = base.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


class _CopyPlan:
    """What a COPY/ADD reads: context sources, another stage's or image's files, URLs,
    heredocs; and the digest of that content for the cache key."""

    def __init__(self, builder: Builder, inst: Instruction, sources: list[str],
                 heredocs: dict[str, Any]) -> None:  # fmt: skip
        self.builder = builder
        self.inst = inst
        self.sources = sources
        self.heredocs = heredocs
        self.items: list[tuple[str, Any]] = []
        self.content = ""
        self.layers: list[LayerDescriptor] | None = None

    def from_context(self) -> None:
        context_sources: list[Source] = []
        parts: list[str] = []
        for src in self.sources:
            if src in self.heredocs:
                doc = self.heredocs[src]
                self.items.append(("heredoc", doc))
                parts.append(hashlib.sha256(doc.content.encode()).hexdigest())
            elif re.match(r"https?://", src):
                self._url(src, parts)
            else:
                found = self.builder.context.sources(src)
                context_sources.extend(found)
                self.items.extend(("context", s) for s in found)
        parts.append(self.builder.context.content_digest(context_sources))
        self.content = chain_key("content", parts)

    def _url(self, url: str, parts: list[str]) -> None:
        if self.inst.keyword != "ADD":
            raise self.inst.error(f"{url}: COPY takes no URLs; use ADD --checksum=sha256:...")
        checksum = self.inst.flags.get("checksum", "")
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", checksum):
            raise self.inst.error(
                f"{url}: a remote source needs --checksum=sha256:<hex> so the build is "
                "reproducible and the download verified"
            )
        self.items.append(("url", (url, checksum)))
        parts.append(checksum)

    def from_stage_or_image(self, name: str) -> None:
        builder = self.builder
        stages = builder.dockerfile.stages
        stage = builder._stage_named(builder.dockerfile, name, before=len(stages))
        if stage is not None:
            if stage.index not in builder.states:
                raise self.inst.error(f"--from={name}: stage {name!r} is not built before this one")
            state = builder.states[stage.index]
            self.layers, key = state.layers, state.key
        else:
            try:
                image = builder.store.resolve(name)
            except (ImageNotFoundError, ValueError):
                raise self.inst.error(
                    f"--from={name}: no stage named {name!r} in this Dockerfile and no image "
                    f"{name!r} in the store"
                ) from None
            self.layers, key = image.layers, image.manifest_digest
        self.items = [("stage", src) for src in self.sources]
        self.content = chain_key("from", key, self.sources)

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[Path | None]:
        """Mount the source stage's rootfs (for --from) while the copy runs."""
        if self.layers is None:
            yield None
            return
        layers = await asyncio.to_thread(self.builder._unpacked, self.layers)
        async with step_rootfs(self.builder.work_dir, layers) as source:
            yield source.rootfs

    def copy_item(self, item: tuple[str, Any], rootfs: Path, source_root: Path | None,
                  dest: str, dest_is_dir: bool, owner: Ownership) -> None:  # fmt: skip
        kind, value = item
        if kind == "heredoc":
            target = posixpath.join(dest, value.name) if dest_is_dir else dest
            write_file(rootfs, target, value.content.encode(), owner, 0o644)
        elif kind == "url":
            self._download(rootfs, value, dest, dest_is_dir, owner)
        elif kind == "stage":
            assert source_root is not None
            path = resolve_in_rootfs(source_root, value if value.startswith("/") else "/" + value)
            if not os.path.lexists(path):
                raise BuildFsError(f"--from: {value} not found in the source stage")
            self._copy_entries(rootfs, walk_host(source_root, path), path, dest, dest_is_dir,
                               owner)  # fmt: skip
        else:
            source: Source = value
            if self.inst.keyword == "ADD" and source.path.is_file():
                kind_of_archive = archive_kind(source.path)
                if kind_of_archive is not None:
                    extract_archive(rootfs, source.path, kind_of_archive, dest)
                    return
            self._copy_entries(rootfs, self.builder.context.walk(source), source.path, dest,
                               dest_is_dir, owner)  # fmt: skip

    @staticmethod
    def _copy_entries(rootfs: Path, entries: Any, path: Path, dest: str, dest_is_dir: bool,
                      owner: Ownership) -> None:  # fmt: skip
        if not path.is_dir() and dest_is_dir:
            dest = posixpath.join(dest, path.name)
        copy_tree(rootfs, entries, dest, owner)

    def _download(self, rootfs: Path, value: tuple[str, str], dest: str, dest_is_dir: bool,
                  owner: Ownership) -> None:  # fmt: skip
        url, checksum = value
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT) as response:  # noqa: S310
            data = response.read()
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != checksum:
            raise BuildFsError(f"{url}: downloaded content is {actual}, --checksum says {checksum}")
        name = posixpath.basename(urllib.parse.urlparse(url).path) or "index.html"
        target = posixpath.join(dest, name) if dest_is_dir else dest
        write_file(rootfs, target, data, owner, 0o600)
