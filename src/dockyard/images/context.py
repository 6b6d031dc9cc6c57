"""The build context: the directory COPY and ADD read from, filtered by .dockerignore.

Invariants:
- Nothing outside the context root is ever read. A source that is absolute, that climbs out
  with `..`, or whose path meets a symlink leading out of the context (absolute, or relative
  but climbing past the root) is refused with ContextError naming the source. Symlinks inside
  a copied directory are copied as symlinks, never followed.
- Ignored paths (Docker's .dockerignore rules: Go filepath.Match patterns plus `**`, `!`
  exceptions, the last matching pattern wins, a match on a directory covers its contents)
  behave as if absent.
- `content_digest` hashes names, types, permission bits, symlink targets and file contents
  (never timestamps), so an unchanged context gives the same digest after a `touch`; a
  per-file hash cache keyed on (size, mtime, ctime, inode) saves re-reading unchanged files.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GLOB_CHARS = re.compile(r"[*?\[]")
HASH_CHUNK = 1 << 20
MAX_HASH_CACHE = 500_000


class ContextError(ValueError):
    """A COPY/ADD source the context cannot provide: missing, ignored or outside it."""


@dataclass(frozen=True)
class Source:
    """One resolved source: its path relative to the context and its real host path."""

    name: str
    path: Path


class IgnoreRules:
    """Docker's .dockerignore matcher."""

    def __init__(self, patterns: list[str]) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in patterns:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = line.startswith("!")
            pattern = posixpath.normpath(line[1:].strip() if exclude else line).lstrip("/")
            if pattern in (".", ""):
                continue
            self.rules.append((exclude, re.compile(_pattern_regex(pattern))))

    def ignored(self, name: str) -> bool:
        """Return True if the context-relative `name` is ignored."""
        result = False
        for exclude, regex in self.rules:
            if regex.match(name):
                result = not exclude
        return result

    def has_exceptions(self) -> bool:
        """Return True if some pattern re-includes paths (`!pattern`)."""
        return any(exclude for exclude, _ in self.rules)


def _pattern_regex(pattern: str) -> str:
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append("[^" + body[1:] + "]" if body.startswith("^") else "[" + body + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    out.append("(?:/.*)?$")
    return "".join(out)


class BuildContext:
    """A context directory with its ignore rules and a per-file hash cache."""

    def __init__(self, root: Path, ignore: IgnoreRules | None = None,
                 hash_cache: Path | None = None) -> None:  # fmt: skip
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise ContextError(f"build context {root} is not a directory")
        self.ignore = ignore or IgnoreRules([])
        self._hash_cache_path = hash_cache
        self._hashes: dict[str, list[object]] = {}
        self._hashes_dirty = False
        if hash_cache is not None:
            with contextlib.suppress(OSError, ValueError):
                self._hashes = dict(json.loads(hash_cache.read_text()))

    @classmethod
    def load(cls, root: Path, dockerfile: Path | None = None,
             hash_cache: Path | None = None) -> BuildContext:  # fmt: skip
        """Open `root` with its .dockerignore (or `<Dockerfile>.dockerignore` beside it)."""
        candidates = [root / ".dockerignore"]
        if dockerfile is not None:
            candidates.insert(0, dockerfile.with_name(dockerfile.name + ".dockerignore"))
        for path in candidates:
            if path.is_file():
                return cls(root, IgnoreRules(path.read_text().splitlines()), hash_cache)
        return cls(root, None, hash_cache)

    # -- resolving sources ------------------------------------------------------------------

    def sources(self, pattern: str) -> list[Source]:
        """Return the sources a COPY/ADD source pattern names (globs expanded, sorted)."""
        name = self._clean(pattern)
        if not GLOB_CHARS.search(name):
            if name and self.ignore.ignored(name):
                raise ContextError(f"{pattern}: excluded by .dockerignore")
            return [Source(name or ".", self._resolve(name, pattern))]
        matches = [m for m in self._glob(name.split("/"), pattern) if not self.ignore.ignored(m)]
        if not matches:
            raise ContextError(f"{pattern}: no source files match in the build context")
        return [Source(m, self._resolve(m, pattern)) for m in sorted(matches)]

    def _clean(self, pattern: str) -> str:
        if pattern.startswith("/"):
            raise ContextError(
                f"{pattern}: an absolute source path is outside the build context; "
                "name sources relative to the context"
            )
        name = posixpath.normpath(pattern)
        if name == ".." or name.startswith("../"):
            raise ContextError(f"{pattern}: the path leads outside the build context")
        return "" if name == "." else name

    def _resolve(self, name: str, pattern: str) -> Path:
        """Return the real path of `name`, following symlinks only while inside the context."""
        todo = [p for p in name.split("/") if p]
        current: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if not current:
                    raise ContextError(f"{pattern}: the path leads outside the build context")
                current.pop()
                continue
            candidate = self.root.joinpath(*current, part)
            try:
                st = os.lstat(candidate)
            except (FileNotFoundError, NotADirectoryError):
                raise ContextError(f"{pattern}: not found in the build context") from None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                target = os.readlink(candidate)
                if target.startswith("/") or hops > 40:
                    raise ContextError(
                        f"{pattern}: symlink {'/'.join([*current, part])} -> {target} leads "
                        "outside the build context"
                    )
                todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                if _climbs_out(current, todo):
                    raise ContextError(
                        f"{pattern}: symlink {'/'.join([*current, part])} -> {target} leads "
                        "outside the build context"
                    )
                continue
            current.append(part)
        return self.root.joinpath(*current)

    def _glob(self, parts: list[str], pattern: str) -> list[str]:
        bases = [""]
        for part in parts:
            if not GLOB_CHARS.search(part):
                bases = [posixpath.join(b, part) if b else part for b in bases]
                continue
            found = []
            for base in bases:
                directory = self._resolve(base, pattern) if base else self.root
                if not directory.is_dir():
                    continue
                for entry in sorted(os.listdir(directory)):
                    if fnmatch.fnmatchcase(entry, part):
                        found.append(posixpath.join(base, entry) if base else entry)
            bases = found
        return [b for b in bases if os.path.lexists(self.root / b)]

    # -- walking and hashing -----------------------------------------------------------------

    def walk(self, source: Source) -> Iterator[tuple[str, Path, os.stat_result]]:
        """Yield (name relative to the source, host path, lstat) under a source, sorted,
        skipping ignored entries; a file source yields itself with the name ''."""
        st = os.stat(source.path)
        yield "", source.path, st
        if stat.S_ISDIR(st.st_mode):
            yield from self._walk_dir(source.path, source.name, "")

    def _walk_dir(self, path: Path, name: str, rel: str) -> Iterator[
            tuple[str, Path, os.stat_result]]:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            ctx_name = posixpath.join(name, rel, entry.name) if name != "." else \
                posixpath.join(rel, entry.name)
            descend = entry.is_dir(follow_symlinks=False) and self.ignore.has_exceptions()
            if self.ignore.ignored(posixpath.normpath(ctx_name)) and not descend:
                continue
            sub = posixpath.join(rel, entry.name) if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            if not self.ignore.ignored(posixpath.normpath(ctx_name)):
                yield sub, Path(entry.path), st
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk_dir(Path(entry.path), name, sub)

    def content_digest(self, sources: list[Source]) -> str:
        """Return a sha256 over the names, types, modes, link targets and contents read."""
        hasher = hashlib.sha256()
        for source in sources:
            for rel, path, st in self.walk(source):
                hasher.update(f"{source.name}\0{rel}\0{st.st_mode:o}\0".encode())
                if stat.S_ISLNK(st.st_mode):
                    hasher.update(os.readlink(path).encode() + b"\0")
                elif stat.S_ISREG(st.st_mode):
                    hasher.update(self._file_hash(path, st).encode() + b"\0")
        self._save_hashes()
        return "sha256:" + hasher.hexdigest()

    def _file_hash(self, path: Path, st: os.stat_result) -> str:
        key = str(path)
        stamp: list[object] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        cached = self._hashes.get(key)
        if cached is not None and cached[:4] == stamp:
            return str(cached[4])
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(HASH_CHUNK):
                h.update(chunk)
        self._hashes[key] = [*stamp, h.hexdigest()]
        self._hashes_dirty = True
        return h.hexdigest()

    def _save_hashes(self) -> None:
        if self._hash_cache_path is None or not self._hashes_dirty:
            return
        if len(self._hashes) > MAX_HASH_CACHE:
            # Keep the newest half (dicts keep insertion order; fresh hashes are appended).
            keep = list(self._hashes.items())[-MAX_HASH_CACHE // 2 :]
            self._hashes = dict(keep)
        tmp = self._hash_cache_path.with_name(self._hash_cache_path.name + f".{os.getpid()}")
        tmp.write_text(json.dumps(self._hashes))
        os.replace(tmp, self._hash_cache_path)
        self._hashes_dirty = False


def _climbs_out(current: list[str], todo: list[str]) -> bool:
    """Return True if following `todo` from `current` would rise above the root."""
    depth = len(current)
    for part in todo:
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            return True
    return False
