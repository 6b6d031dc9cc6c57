"""Detach keys: Docker's `--detach-keys` format and the recogniser over split reads.

The sessions on a real terminal (detach, pod still running, attach again) are proved in
tests/e2e/test_attach.py.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dockyard.cli.detach_keys import DEFAULT_DETACH_KEYS, DetachRecognizer, parse_detach_keys
from dockyard.cli.docker_commands import build_objects, parse_run
from dockyard.cli.kubeargs import CliError
from dockyard.cli.main import app

pytestmark = pytest.mark.unit

CTRL_P, CTRL_Q = b"\x10", b"\x11"


@pytest.mark.parametrize(("text", "want"), [
    (DEFAULT_DETACH_KEYS, b"\x10\x11"),  # p is the 16th letter
    ("ctrl-x,y", b"\x18y"),  # x is the 24th
    ("CTRL-A", b"\x01"),  # Docker lowers the case of ctrl- names
    ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", bytes([0, 27, 28, 29, 30, 31])),
    ("a,b,c", b"abc"),
])
def test_parse_detach_keys(text: str, want: bytes) -> None:
    assert parse_detach_keys(text) == want


def test_empty_detach_keys_turn_detaching_off() -> None:
    assert parse_detach_keys("") == b""
    keys = DetachRecognizer(b"")
    assert keys.feed(CTRL_P + CTRL_Q) == CTRL_P + CTRL_Q and not keys.detached


@pytest.mark.parametrize("text", ["ctrl-", "ctrl-1", "ctrl-pq", "alt-p", "p,,q", ",", "é",
                                  "ctrl-p,"])
def test_invalid_detach_keys_name_the_bad_key(text: str) -> None:
    with pytest.raises(CliError, match=r"invalid --detach-keys .*is not a key"):
        parse_detach_keys(text)


def test_the_sequence_detaches_and_is_not_passed_on() -> None:
    keys = DetachRecognizer(b"\x10\x11")
    assert keys.feed(b"ls\r" + CTRL_P + CTRL_Q + b"after") == b"ls\r"
    assert keys.detached
    assert keys.feed(b"more") == b""  # nothing after the detach goes through


def test_a_sequence_split_across_reads_detaches() -> None:
    keys = DetachRecognizer(b"\x10\x11")
    assert keys.feed(b"echo" + CTRL_P) == b"echo"  # Ctrl-P held: it may start the sequence
    assert not keys.detached
    assert keys.feed(CTRL_Q) == b""
    assert keys.detached


def test_ctrl_p_not_followed_by_ctrl_q_passes_through_as_both_bytes() -> None:
    keys = DetachRecognizer(b"\x10\x11")
    assert keys.feed(CTRL_P + b"x") == CTRL_P + b"x"
    assert keys.feed(CTRL_P) == b""
    assert keys.feed(b"y") == CTRL_P + b"y"  # held across reads, then passed on in order
    assert keys.feed(CTRL_P + CTRL_P + CTRL_Q) == CTRL_P  # the second Ctrl-P starts it again
    assert keys.detached


def test_overlapping_custom_sequence_is_found() -> None:
    # "aab": after "aa" a third "a" must keep "aa" held, passing on one "a" (aaab → a + detach)
    keys = DetachRecognizer(parse_detach_keys("a,a,b"))
    assert keys.feed(b"a") == b""
    assert keys.feed(b"aa") == b"a"
    assert keys.feed(b"b") == b"" and keys.detached


def test_a_held_prefix_is_flushed_when_input_ends() -> None:
    keys = DetachRecognizer(b"\x18y")
    assert keys.feed(b"ok\x18") == b"ok"
    assert keys.flush() == b"\x18" and not keys.detached


def test_run_checks_detach_keys_and_a_terminal_run_keeps_stdin_open() -> None:
    spec = parse_run("busybox", ["sh"], False, [], [], [], "t", True, "", "", "no", 0, True,
                     True, "ctrl-x,y")  # fmt: skip
    assert spec.detach_keys == b"\x18y"
    [pod] = build_objects(spec, "default")
    # without stdinOnce a detach leaves the shell's stdin open for the next attach
    assert "stdinOnce" not in pod["spec"]["containers"][0]
    with pytest.raises(CliError, match="--detach-keys"):
        parse_run("busybox", [], False, [], [], [], "t", False, "", "", "no", 0, True, True,
                  "ctrl-")  # fmt: skip


@pytest.mark.parametrize("verb", [["attach"], ["run", "-it"]])
def test_invalid_detach_keys_exit_125_before_any_connection(verb: list[str]) -> None:
    # run's options come before the image: what follows it is the container's command
    result = CliRunner().invoke(app, [*verb, "--detach-keys", "ctrl-1", "--kubeconfig",
                                      "/nonexistent/kubeconfig", "busybox"])
    assert result.exit_code == 125, result.output
    assert "invalid --detach-keys 'ctrl-1'" in result.output
