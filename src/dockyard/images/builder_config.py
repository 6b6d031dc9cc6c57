"""Config-only Dockerfile instructions: how each changes the image config's `config` section.

ENV, LABEL, EXPOSE, CMD, ENTRYPOINT, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, USER,
MAINTAINER: pure functions of (config, instruction, expansion env), no I/O.

Invariants: the section uses the image spec's keys exactly (Env, Cmd, Entrypoint,
WorkingDir, User, ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, Shell, OnBuild);
Env keeps first-set order with later values replacing earlier ones; shell-form CMD and
ENTRYPOINT become the stage's SHELL + [text]; ENTRYPOINT drops a Cmd inherited from the base
image (Docker's rule); durations are Go-style ("30s", "1m30s") stored as nanoseconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from dockyard.images.dockerfile import Instruction, expand_word, expand_words, key_values

DEFAULT_SHELL = ["/bin/sh", "-c"]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9}  # fmt: skip
_PORT = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp|sctp))?")


def shell_of(config: Mapping[str, Any]) -> list[str]:
    """Return the SHELL in force (the image's Shell, else /bin/sh -c)."""
    shell = config.get("Shell")
    return list(shell) if shell else list(DEFAULT_SHELL)


def command_argv(config: Mapping[str, Any], inst: Instruction) -> list[str]:
    """Return exec-form arguments as given, or shell form as SHELL + [text]."""
    args = inst.json_args()
    if args is not None:
        return args
    return shell_of(config) + [inst.value.strip()]


def set_env(config: dict[str, Any], key: str, value: str) -> None:
    """Set KEY=value in Env, replacing an earlier value in place."""
    env = list(config.get("Env") or [])
    entry = f"{key}={value}"
    for i, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[i] = entry
            break
    else:
        env.append(entry)
    config["Env"] = env


def env_map(config: Mapping[str, Any]) -> dict[str, str]:
    """Return Env as a dict."""
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def apply_config_instruction(
    config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
    cmd_inherited: bool,
) -> str:  # fmt: skip
    """Apply one config-only instruction to `config`; return its history text."""
    handler = _HANDLERS[inst.keyword]
    return handler(config, inst, env, escape, cmd_inherited)


def _env(config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
         _: bool) -> str:  # fmt: skip
    pairs = key_values(inst, env, escape)
    for key, value in pairs:
        set_env(config, key, value)
    return "ENV " + " ".join(f"{k}={v}" for k, v in pairs)


def _label(config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
           _: bool) -> str:  # fmt: skip
    pairs = key_values(inst, env, escape)
    labels = dict(config.get("Labels") or {})
    labels.update(pairs)
    config["Labels"] = labels
    return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)


def _expose(config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
            _: bool) -> str:  # fmt: skip
    ports = dict(config.get("ExposedPorts") or {})
    words = expand_words(inst.value, env, escape, inst.line)
    for word in words:
        match = _PORT.fullmatch(word.lower())
        if not match:
            raise inst.error(f"invalid port {word!r}: use PORT[-END][/tcp|udp|sctp]")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if not 0 < first <= last <= 65535:
            raise inst.error(f"invalid port {word!r}: out of range 1-65535")
        for port in range(first, last + 1):
            ports[f"{port}/{match.group(3) or 'tcp'}"] = {}
    config["ExposedPorts"] = ports
    return "EXPOSE " + " ".join(words)


def _cmd(config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
         _: bool) -> str:  # fmt: skip
    config["Cmd"] = command_argv(config, inst)
    return f"CMD {_history_form(config['Cmd'], inst)}"


def _entrypoint(config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
                cmd_inherited: bool) -> str:  # fmt: skip
    config["Entrypoint"] = command_argv(config, inst)
    if cmd_inherited:
        config.pop("Cmd", None)
    return f"ENTRYPOINT {_history_form(config['Entrypoint'], inst)}"


def _history_form(argv: list[str], inst: Instruction) -> str:
    return json.dumps(argv)


def _volume(config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
            _: bool) -> str:  # fmt: skip
    args = inst.json_args()
    paths = [expand_word(a, env, escape, inst.line) for a in args] if args is not None else \
        expand_words(inst.value, env, escape, inst.line)
    volumes = dict(config.get("Volumes") or {})
    for path in paths:
        if not path:
            raise inst.error("VOLUME path must not be empty")
        volumes[path] = {}
    config["Volumes"] = volumes
    return "VOLUME " + str(paths)


def _stopsignal(config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
                _: bool) -> str:  # fmt: skip
    signal = expand_word(inst.value.strip(), env, escape, inst.line)
    if not re.fullmatch(r"(SIG)?[A-Z0-9+-]+|\d+", signal):
        raise inst.error(f"invalid signal {signal!r}")
    config["StopSignal"] = signal
    return f"STOPSIGNAL {signal}"


def _healthcheck(config: dict[str, Any], inst: Instruction, env: Mapping[str, str],
                 escape: str, _: bool) -> str:  # fmt: skip
    kind, _sep, rest = inst.value.strip().partition(" ")
    if kind.upper() == "NONE":
        config["Healthcheck"] = {"Test": ["NONE"]}
        return "HEALTHCHECK NONE"
    probe = Instruction("CMD", rest.strip(), inst.line, inst.original)
    args = probe.json_args()
    check: dict[str, Any] = {"Test": ["CMD", *args] if args is not None else
                             ["CMD-SHELL", rest.strip()]}  # fmt: skip
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        if flag in inst.flags:
            check[key] = parse_duration(inst.flags[flag], inst)
    if "retries" in inst.flags:
        if not inst.flags["retries"].isdigit():
            raise inst.error(f"--retries={inst.flags['retries']}: give a whole number")
        check["Retries"] = int(inst.flags["retries"])
    config["Healthcheck"] = check
    return f"HEALTHCHECK &{{{check['Test']}}}"


def parse_duration(text: str, inst: Instruction) -> int:
    """Return a Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise inst.error(f"invalid duration {text!r}: use e.g. 30s, 1m30s, 500ms")
    return int(total)


def _shell(config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
           _: bool) -> str:  # fmt: skip
    args = inst.json_args()
    if not args:
        raise inst.error('requires a non-empty JSON array, e.g. SHELL ["/bin/sh", "-c"]')
    config["Shell"] = args
    return f"SHELL {args}"


def _onbuild(config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
             _: bool) -> str:  # fmt: skip
    config["OnBuild"] = list(config.get("OnBuild") or []) + [inst.value.strip()]
    return f"ONBUILD {inst.value.strip()}"


def _user(config: dict[str, Any], inst: Instruction, env: Mapping[str, str], escape: str,
          _: bool) -> str:  # fmt: skip
    user = expand_word(inst.value.strip(), env, escape, inst.line)
    config["User"] = user
    return f"USER {user}"


def _maintainer(config: dict[str, Any], inst: Instruction, env: Mapping[str, str],
                escape: str, _: bool) -> str:  # fmt: skip
    return f"MAINTAINER {inst.value.strip()}"


_HANDLERS = {
    "ENV": _env, "LABEL": _label, "EXPOSE": _expose, "CMD": _cmd, "ENTRYPOINT": _entrypoint,
    "VOLUME": _volume, "STOPSIGNAL": _stopsignal, "HEALTHCHECK": _healthcheck,
    "SHELL": _shell, "ONBUILD": _onbuild, "USER": _user, "MAINTAINER": _maintainer,
}  # fmt: skip
CONFIG_INSTRUCTIONS = frozenset(_HANDLERS)
