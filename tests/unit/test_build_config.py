"""Config-only instructions change the image config as Docker's builder does."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.images.builder_config import apply_config_instruction
from dockyard.images.dockerfile import DockerfileSyntaxError, parse_dockerfile

pytestmark = pytest.mark.unit


def apply(lines: str, config: dict[str, Any] | None = None,
          inherited: bool = True) -> dict[str, Any]:  # fmt: skip
    config = dict(config or {})
    for inst in parse_dockerfile("FROM x\n" + lines).stages[0].instructions:
        apply_config_instruction(config, inst, {"PORT": "8080"}, "\\", inherited)
    return config


def test_env_label_expose_volume_user_stopsignal() -> None:
    config = apply(
        "ENV A=1 B=2\nENV A=3\nLABEL a=b\nEXPOSE $PORT 53/udp 7000-7001\n"
        'VOLUME ["/data", "/logs"]\nUSER app:app\nSTOPSIGNAL SIGTERM\n'
    )
    assert config["Env"] == ["A=3", "B=2"]  # a later value replaces in place
    assert config["Labels"] == {"a": "b"}
    assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp", "7000/tcp", "7001/tcp"}
    assert config["Volumes"] == {"/data": {}, "/logs": {}}
    assert (config["User"], config["StopSignal"]) == ("app:app", "SIGTERM")


def test_cmd_and_entrypoint_forms_and_the_inherited_cmd_rule() -> None:
    config = apply('SHELL ["/bin/bash", "-c"]\nCMD echo hi\n')
    assert config["Cmd"] == ["/bin/bash", "-c", "echo hi"]
    # ENTRYPOINT drops a Cmd that came from the base image...
    assert "Cmd" not in apply('ENTRYPOINT ["/app"]\n', {"Cmd": ["sh"]}, inherited=True)
    # ...but not one this stage set.
    kept = apply('ENTRYPOINT ["/app"]\n', {"Cmd": ["--help"]}, inherited=False)
    assert kept["Cmd"] == ["--help"] and kept["Entrypoint"] == ["/app"]


def test_healthcheck_durations_in_nanoseconds() -> None:
    config = apply("HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD [\"/ok\"]\n")
    # 1m30s = 90 s = 90e9 ns; 500ms = 5e8 ns
    assert config["Healthcheck"] == {"Test": ["CMD", "/ok"], "Interval": 90_000_000_000,
                                     "Timeout": 500_000_000, "Retries": 3}
    assert apply("HEALTHCHECK NONE\n")["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("EXPOSE 70000\n", "out of range"),
        ("EXPOSE http\n", "invalid port"),
        ("HEALTHCHECK --interval=soon CMD true\n", "invalid duration"),
        ("LABEL novalue\n", "expected KEY=VALUE"),
    ],
)
def test_bad_values_name_the_line(line: str, words: str) -> None:
    with pytest.raises(DockerfileSyntaxError, match=f"line 2: .*{words}"):
        apply(line)


def test_unsupported_buildkit_flags_are_refused_not_ignored() -> None:
    with pytest.raises(DockerfileSyntaxError, match="line 2: RUN: --mount is not supported"):
        parse_dockerfile("FROM x\nRUN --mount=type=cache,target=/root/.cache true\n")
