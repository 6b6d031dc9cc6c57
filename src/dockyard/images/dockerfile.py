"""Dockerfile parsing: directives, line continuations, comments, heredocs, flags, stages,
and Docker's word expansion ($VAR, ${VAR:-default}, quotes, the escape character).

Why our own parser: dockerfile-parse (PyPI) was tried first. It splits a heredoc
(`RUN <<EOF ... EOF`) into bogus instructions, ignores the `# escape` directive, and accepts
unknown instructions without an error, so a typo would build silently. The grammar here
follows BuildKit's (moby/buildkit frontend/dockerfile/parser and shell/lex.go) for the parts
the builder uses.

Invariants: every error raised is a DockerfileSyntaxError whose message starts with
`line N:` (1-based, the line where the faulty instruction starts); an Instruction keeps its
original text for history and cache keys; expansion never runs a shell: `$(...)` and
backticks are left as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

INSTRUCTIONS = frozenset({
    "FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "EXPOSE", "LABEL", "CMD",
    "ENTRYPOINT", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD", "MAINTAINER",
})  # fmt: skip
HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})
FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "RUN": frozenset({"network", "mount", "security"}),
    "COPY": frozenset({"from", "chown", "chmod", "link", "parents", "exclude"}),
    "ADD": frozenset({"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval",
                              "retries"}),
}
# BuildKit flags whose effect we do not implement: refused by name rather than ignored.
UNSUPPORTED_FLAGS: dict[str, frozenset[str]] = {
    "RUN": frozenset({"mount", "security"}),
    "COPY": frozenset({"parents", "exclude"}),
    "ADD": frozenset({"keep-git-dir", "exclude"}),
}
KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([a-zA-Z_][a-zA-Z0-9_]*)\2")
_FLAG = re.compile(r"^--([a-z][a-z0-9-]*)(?:=(.*))?$")
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")


class DockerfileSyntaxError(ValueError):
    """A Dockerfile the parser refuses; the message names the line."""


@dataclass(frozen=True)
class Heredoc:
    """A here-document: `<<EOF` ... `EOF`, its content and whether to expand variables."""

    name: str
    content: str
    expand: bool = True


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword, flags, the argument text, heredocs, its line."""

    keyword: str
    value: str
    line: int
    original: str
    flags: dict[str, str] = field(default_factory=dict)
    heredocs: tuple[Heredoc, ...] = ()

    def json_args(self) -> list[str] | None:
        """Return the exec-form (JSON array of strings) arguments, or None for shell form."""
        text = self.value.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None  # Docker treats a malformed array as shell form
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None
        return value

    def error(self, message: str) -> DockerfileSyntaxError:
        """Return a syntax error for this instruction, naming its line."""
        return DockerfileSyntaxError(f"line {self.line}: {self.keyword}: {message}")


@dataclass
class Stage:
    """A build stage: `FROM base [AS name]` and the instructions up to the next FROM."""

    index: int
    base: str
    name: str
    platform: str
    from_instruction: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    """A parsed Dockerfile: parser directives, ARGs before the first FROM, and stages."""

    directives: dict[str, str]
    global_args: list[Instruction]
    stages: list[Stage]
    escape: str = "\\"

    def stage(self, name_or_index: str) -> Stage:
        """Return the stage named (or numbered) `name_or_index`, or raise naming the choices."""
        for stage in self.stages:
            if stage.name and stage.name == name_or_index.lower():
                return stage
        if name_or_index.isdigit() and int(name_or_index) < len(self.stages):
            return self.stages[int(name_or_index)]
        names = [s.name for s in self.stages if s.name] or ["(no named stages)"]
        raise DockerfileSyntaxError(
            f"stage {name_or_index!r} not found: this Dockerfile has {', '.join(names)}"
        )


def parse_dockerfile(text: str) -> Dockerfile:
    """Parse Dockerfile text into directives, global ARGs and stages."""
    lines = text.replace("\r\n", "\n").split("\n")
    directives, start = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileSyntaxError(f"line 1: escape directive must be \\ or `, not {escape!r}")
    instructions = _instructions(lines, start, escape)
    return _stages(Dockerfile(directives, [], [], escape), instructions)


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    directives: dict[str, str] = {}
    for number, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if not match or match.group(1).lower() not in KNOWN_DIRECTIVES:
            return directives, number
        key = match.group(1).lower()
        if key in directives:
            raise DockerfileSyntaxError(f"line {number + 1}: directive {key!r} given twice")
        directives[key] = match.group(2)
    return directives, len(lines)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _instructions(lines: list[str], start: int, escape: str) -> list[Instruction]:
    out: list[Instruction] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if not line.strip() or _is_comment(line):
            i += 1
            continue
        first = i + 1
        logical, i = _join_continuations(lines, i, escape)
        parts = logical.strip().split(None, 1)
        keyword, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        upper = keyword.upper()
        if upper not in INSTRUCTIONS:
            raise DockerfileSyntaxError(f"line {first}: unknown instruction: {keyword}")
        heredocs: tuple[Heredoc, ...] = ()
        if upper in HEREDOC_INSTRUCTIONS and "<<" in rest:
            heredocs, i = _read_heredocs(rest, lines, i, first)
        flags, value = _split_flags(upper, rest, first)
        original = "\n".join(lines[first - 1 : i])
        out.append(Instruction(upper, value, first, original, flags, heredocs))
    return out


def _join_continuations(lines: list[str], i: int, escape: str) -> tuple[str, int]:
    """Return one logical line starting at lines[i] and the index after it."""
    parts: list[str] = []
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.rstrip()
        if stripped.endswith(escape) and not stripped.endswith(escape * 2):
            parts.append(stripped[:-1])
            # Comment lines and empty lines inside a continuation are dropped, as BuildKit.
            while i < len(lines) and (_is_comment(lines[i]) or not lines[i].strip()):
                i += 1
            if i >= len(lines):
                break
            continue
        parts.append(line)
        break
    return "".join(parts), i


def _read_heredocs(
    rest: str, lines: list[str], i: int, first: int
) -> tuple[tuple[Heredoc, ...], int]:
    docs: list[Heredoc] = []
    for match in _HEREDOC.finditer(rest):
        strip_tabs, quote, name = match.group(1) == "-", match.group(2), match.group(3)
        body: list[str] = []
        while True:
            if i >= len(lines):
                raise DockerfileSyntaxError(
                    f"line {first}: heredoc <<{name} is not terminated by a line {name!r}"
                )
            line = lines[i]
            i += 1
            if strip_tabs:
                line = line.lstrip("\t")
            if line == name:
                break
            body.append(line)
        docs.append(Heredoc(name, "\n".join(body) + "\n", expand=not quote))
    return tuple(docs), i


def _split_flags(keyword: str, rest: str, line: int) -> tuple[dict[str, str], str]:
    allowed = FLAGS.get(keyword, frozenset())
    flags: dict[str, str] = {}
    remaining = rest
    while remaining.startswith("--"):
        token, _, after = remaining.partition(" ")
        match = _FLAG.match(token)
        if not match:
            raise DockerfileSyntaxError(f"line {line}: {keyword}: malformed flag {token!r}")
        name, value = match.group(1), match.group(2)
        if name not in allowed:
            raise DockerfileSyntaxError(
                f"line {line}: {keyword}: unknown flag --{name}"
                + (f" (allowed: {', '.join('--' + f for f in sorted(allowed))})" if allowed
                   else "")
            )
        if name in UNSUPPORTED_FLAGS.get(keyword, ()):
            raise DockerfileSyntaxError(
                f"line {line}: {keyword}: --{name} is not supported by dockyard's builder"
            )
        if name in flags and name != "exclude":
            raise DockerfileSyntaxError(f"line {line}: {keyword}: --{name} given twice")
        flags[name] = value if value is not None else "true"
        remaining = after.lstrip()
    return flags, remaining


def _stages(dockerfile: Dockerfile, instructions: list[Instruction]) -> Dockerfile:
    for inst in instructions:
        if inst.keyword == "FROM":
            dockerfile.stages.append(_new_stage(inst, len(dockerfile.stages), dockerfile))
        elif not dockerfile.stages:
            if inst.keyword != "ARG":
                raise inst.error("only ARG may come before the first FROM")
            dockerfile.global_args.append(inst)
        else:
            _check(inst)
            dockerfile.stages[-1].instructions.append(inst)
    if not dockerfile.stages:
        raise DockerfileSyntaxError("line 1: the Dockerfile has no FROM instruction")
    return dockerfile


def _new_stage(inst: Instruction, index: int, dockerfile: Dockerfile) -> Stage:
    words = inst.value.split()
    if len(words) == 3 and words[1].lower() == "as":
        if not _STAGE_NAME.fullmatch(words[2].lower()):
            raise inst.error(f"invalid stage name {words[2]!r}")
        name = words[2].lower()
        if any(s.name == name for s in dockerfile.stages):
            raise inst.error(f"stage name {name!r} is used twice")
    elif len(words) == 1:
        name = ""
    else:
        raise inst.error("expected `FROM image [AS name]`")
    return Stage(index, words[0], name, inst.flags.get("platform", ""), inst)


def _check(inst: Instruction) -> None:
    """Refuse instructions whose argument shape is wrong, naming the line."""
    value = inst.value.strip()
    needs_value = inst.keyword not in ("RUN", "COPY", "ADD") or not inst.heredocs
    if not value and needs_value:
        raise inst.error("requires at least one argument")
    if inst.keyword in ("COPY", "ADD") and not inst.heredocs:
        args = inst.json_args()
        if len(args if args is not None else value.split()) < 2:
            raise inst.error("requires at least two arguments: source(s) and destination")
    if inst.keyword == "SHELL" and not inst.json_args():
        raise inst.error('requires a JSON array, e.g. SHELL ["/bin/sh", "-c"]')
    if inst.keyword == "ONBUILD":
        trigger = value.split(None, 1)[0].upper()
        if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
            raise inst.error(f"{trigger} is not allowed as an ONBUILD trigger")
        if trigger not in INSTRUCTIONS:
            raise inst.error(f"unknown trigger instruction {trigger}")
    if inst.keyword == "HEALTHCHECK":
        kind = value.split(None, 1)[0].upper()
        if kind not in ("CMD", "NONE"):
            raise inst.error("expected HEALTHCHECK [options] CMD command, or HEALTHCHECK NONE")


def parse_trigger(text: str, line: int) -> Instruction:
    """Parse one ONBUILD trigger (an instruction on one line) as an Instruction."""
    parsed = _instructions([text], 0, "\\")
    if len(parsed) != 1:
        raise DockerfileSyntaxError(f"line {line}: ONBUILD trigger {text!r} is not one line")
    inst = parsed[0]
    trigger = Instruction(inst.keyword, inst.value, line, text, inst.flags, inst.heredocs)
    _check(trigger)
    return trigger


# -- word expansion (BuildKit's shell/lex.go, without command substitution) -------------------


class _Lexer:
    """Expands one word list: quotes, the escape character, $VAR and ${VAR...} forms."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str, line: int) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.line = line

    def words(self) -> list[str]:
        out: list[str] = []
        word: list[str] = []
        started = False
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t\n":
                if started:
                    out.append("".join(word))
                    word, started = [], False
                self.pos += 1
                continue
            started = True
            word.append(self._token(c))
        if started:
            out.append("".join(word))
        return out

    def _token(self, c: str) -> str:
        if c == "'":
            return self._single_quoted()
        if c == '"':
            return self._double_quoted()
        if c == "$":
            return self._variable()
        if c == self.escape and self.pos + 1 < len(self.text):
            self.pos += 2
            return self.text[self.pos - 1]
        self.pos += 1
        return c

    def _single_quoted(self) -> str:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise DockerfileSyntaxError(f"line {self.line}: unterminated single quote")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def _double_quoted(self) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == '"':
                self.pos += 1
                return "".join(out)
            if c == "$":
                out.append(self._variable())
            elif c == self.escape and self.pos + 1 < len(self.text) and \
                    self.text[self.pos + 1] in ('"', "$", self.escape):
                out.append(self.text[self.pos + 1])
                self.pos += 2
            else:
                out.append(c)
                self.pos += 1
        raise DockerfileSyntaxError(f"line {self.line}: unterminated double quote")

    def _variable(self) -> str:
        self.pos += 1
        if self.pos < len(self.text) and self.text[self.pos] == "{":
            return self._braced()
        match = _NAME.match(self.text, self.pos)
        if not match:
            return "$"
        self.pos = match.end()
        return self.env.get(match.group(0), "")

    def _braced(self) -> str:
        end = _matching_brace(self.text, self.pos)
        if end < 0:
            raise DockerfileSyntaxError(f"line {self.line}: missing '}}' in variable")
        body = self.text[self.pos + 1 : end]
        self.pos = end + 1
        match = _NAME.match(body)
        if not match:
            raise DockerfileSyntaxError(f"line {self.line}: bad substitution ${{{body}}}")
        name, modifier = match.group(0), body[match.end():]
        value = self.env.get(name)
        if not modifier:
            return value or ""
        word = expand_word(_modifier_word(modifier), self.env, self.escape, self.line)
        return _apply_modifier(name, value, modifier, word, self.line)


def _modifier_word(modifier: str) -> str:
    for op in (":-", ":+", ":?", "-", "+", "?"):
        if modifier.startswith(op):
            return modifier[len(op):]
    return ""


def _apply_modifier(name: str, value: str | None, modifier: str, word: str, line: int) -> str:
    colon = modifier.startswith(":")
    op = modifier[1 if colon else 0]
    unset = value is None or (colon and value == "")
    if op == "-":
        return word if unset else (value or "")
    if op == "+":
        return "" if unset else word
    if op == "?":
        if unset:
            raise DockerfileSyntaxError(f"line {line}: {name}: {word or 'is not set'}")
        return value or ""
    raise DockerfileSyntaxError(f"line {line}: unsupported modifier in ${{{name}{modifier}}}")


def _matching_brace(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def expand_words(
    text: str, env: Mapping[str, str], escape: str = "\\", line: int = 0
) -> list[str]:
    """Return `text` split into words with quotes removed and variables expanded."""
    return _Lexer(text, env, escape, line).words()


def expand_word(text: str, env: Mapping[str, str], escape: str = "\\", line: int = 0) -> str:
    """Return `text` as one word (spaces kept), quotes removed and variables expanded."""
    lexer = _Lexer(text, env, escape, line)
    out: list[str] = []
    while lexer.pos < len(text):
        out.append(lexer._token(text[lexer.pos]))
    return "".join(out)


def key_values(inst: Instruction, env: Mapping[str, str], escape: str = "\\") -> list[
        tuple[str, str]]:
    """Return the KEY=VALUE pairs of ENV or LABEL (also the legacy `ENV KEY value` form)."""
    raw = inst.value.strip()
    first = raw.split(None, 1)[0] if raw else ""
    if "=" not in first:
        if inst.keyword == "LABEL":
            raise inst.error(f"expected KEY=VALUE, got {first!r}")
        parts = raw.split(None, 1)
        if len(parts) < 2:
            raise inst.error(f"{first} has no value (use {first}=VALUE)")
        return [(parts[0], expand_word(parts[1], env, escape, inst.line))]
    pairs = []
    for word in expand_words(raw, env, escape, inst.line):
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise inst.error(f"expected KEY=VALUE, got {word!r}")
        pairs.append((key, value))
    return pairs
