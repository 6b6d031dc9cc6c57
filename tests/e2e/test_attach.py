"""End-to-end: pods/attach through the api server and the agent to conmon, with real clients.

kubectl 1.32 `attach -i` and the `dockyard run -i|-it` / `dockyard attach` verbs against a server
WITH its agent (real runc and conmon). Terminal sessions run the CLI on a pseudo-terminal made
here (os.openpty), typing as a person would, detach keys included (Ctrl-P Ctrl-Q, split
across reads, and a custom `--detach-keys`). The module's server is checked to leave nothing
behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_agent_support import KUBECTL, AgentServer, new_server, wait_until
from tests.e2e.test_cli_support import DOCKYARD, dockyard

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PROMPT_HINT = b"If you don't see a command prompt, try pressing enter."
ROWS, COLS = 33, 101
STEP_SECONDS = 0.5
CTRL_P, CTRL_Q = b"\x10", b"\x11"
DETACHED = b"read escape sequence"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    srv = new_server(tmp_path_factory.mktemp("attach-e2e"), node="attach-node")
    try:
        yield srv
    finally:
        srv.stop_and_check()


def pod_exists(server: AgentServer, name: str) -> bool:
    return server.kubectl("get", "pod", name, check=False).returncode == 0


def wait_running(server: AgentServer, name: str) -> None:
    def running() -> bool:
        statuses = server.get("pod", name).get("status", {}).get("containerStatuses") or []
        return any("running" in (s.get("state") or {}) for s in statuses)

    wait_until(running, 90, f"{name} to run")


def in_raw_mode(master: int) -> bool:
    """Return True once the client has put the pty in raw mode (no line editing)."""
    return not termios.tcgetattr(master)[3] & termios.ICANON


def on_terminal(server: AgentServer, args: list[str], typed: bytes, timeout: float = 90,
                then: tuple[tuple[bytes, bytes], ...] = ()) -> tuple[int, bytes]:  # fmt: skip
    """Run `dockyard ARGS` on a new pty; once attached, type `typed`; return (exit, output).

    Each (expected, keys) in `then` is typed once `expected` is in the output and at least
    STEP_SECONDS after the previous keys (so they reach the client in a read of their own).
    ARGS starting with "kubectl" run kubectl 1.32 against the server instead.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = dict(os.environ, KUBECONFIG=str(server.kubeconfig), HOME=str(server.base / "home"))
    (server.base / "home").mkdir(exist_ok=True)
    argv = [DOCKYARD, *args]
    if args[0] == "kubectl":
        argv = [KUBECTL, "--kubeconfig", str(server.kubeconfig), "--cache-dir",
                str(server.base / "kubecache"), *args[1:]]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)  # fmt: skip
    os.close(slave)
    output, deadline, sent = b"", time.monotonic() + timeout, False
    steps, last_typed = list(then), 0.0
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every holder of the pty's other end has gone
                    break
                output += chunk
            if not sent and PROMPT_HINT in output and in_raw_mode(master):
                # Typed earlier, the input could be flushed by the client's switch to raw mode.
                os.write(master, typed)
                sent, last_typed = True, time.monotonic()
            elif sent and steps and steps[0][0] in output and (
                    time.monotonic() - last_typed >= STEP_SECONDS):
                os.write(master, steps.pop(0)[1])
                last_typed = time.monotonic()
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_kubectl_attach_pipes_stdin_to_a_cat_pod(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: catter}
spec:
  restartPolicy: Never
  containers:
  - {name: cat, image: busybox, command: [cat], stdin: true, stdinOnce: true}
""")
    wait_running(server, "catter")
    out = server.kubectl("attach", "-i", "catter", stdin="hello through attach\n")
    assert out.stdout == "hello through attach\n", out.stderr
    # stdinOnce: the end of our stdin closed the container's, so cat finished
    wait_until(lambda: server.get("pod", "catter")["status"].get("phase") == "Succeeded", 60,
               "cat to exit")
    server.kubectl("delete", "pod", "catter", "--grace-period=0")


def test_attach_to_a_pod_without_stdin_is_refused(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: closed}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
""")
    wait_running(server, "closed")
    out = server.kubectl("attach", "-i", "closed", stdin="ignored\n", check=False)
    assert out.returncode != 0
    assert "container main was not created with stdin" in out.stderr, out.stderr
    out = server.kubectl("attach", "-it", "closed", stdin="ignored\n", check=False)
    assert "Unable to use a TTY - container main did not allocate one" in out.stderr
    server.kubectl("delete", "pod", "closed", "--grace-period=0")


def test_run_i_rm_pipes_stdin_and_removes_the_pod(server: AgentServer) -> None:
    result = dockyard(server.kubeconfig, "run", "-i", "--rm", "--name", "piped", "busybox",
                      "cat", stdin="hi\n")
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
    assert not pod_exists(server, "piped")
    result = dockyard(server.kubeconfig, "run", "-i", "--rm", "--name", "early", "busybox",
                      "sh", "-c", "echo early; cat; echo done >&2", stdin="late\n")
    # printed before any attach could start, yet shown: the output comes from the log
    assert (result.returncode, result.stdout) == (0, "early\nlate\ndone\n"), result.stderr
    big = "".join(f"line {i}\n" for i in range(20000))  # 228 KB: many stdin packets
    result = dockyard(server.kubeconfig, "run", "-i", "--rm", "--name", "counted", "busybox",
                      "wc", "-c", stdin=big)
    assert (result.returncode, result.stdout.strip()) == (0, str(len(big))), result.stderr


def test_run_it_types_into_a_shell_and_returns_its_exit_code(server: AgentServer) -> None:
    code, output = on_terminal(server, ["run", "-it", "--rm", "--name", "shell", "busybox", "sh"],
                               b"stty size; echo h''i; exit 3\r")
    assert code == 3, output
    assert re.search(rb"(^|\n)hi\r\n", output), output  # the command's output, not its echo
    assert f"{ROWS} {COLS}".encode() in output, output  # our terminal's size reached it
    assert not pod_exists(server, "shell")


def test_dockyard_attach_to_a_detached_interactive_pod(server: AgentServer) -> None:
    result = dockyard(server.kubeconfig, "run", "-dit", "--name", "console", "busybox", "sh")
    assert result.returncode == 0, result.stderr
    pod = json.loads(server.kubectl("get", "pod", "console", "-o", "json").stdout)
    container = pod["spec"]["containers"][0]
    assert (container.get("stdin"), container.get("tty"), container.get("stdinOnce")) == (
        True, True, None)
    wait_running(server, "console")
    code, output = on_terminal(server, ["attach", "console"], b"echo at''tached; exit 4\r")
    assert code == 4 and b"attached\r\n" in output, output
    wait_until(lambda: server.get("pod", "console")["status"].get("phase") == "Failed", 60,
               "the pod to fail (exit 4)")
    result = dockyard(server.kubeconfig, "attach", "console")
    assert result.returncode == 125 and "is not running" in result.stderr, result.stderr
    server.kubectl("delete", "pod", "console", "--grace-period=0")


def test_kubectl_attach_it_to_a_terminal_pod(server: AgentServer) -> None:
    result = dockyard(server.kubeconfig, "run", "-dit", "--name", "kshell", "busybox", "sh")
    assert result.returncode == 0, result.stderr
    wait_running(server, "kshell")
    code, output = on_terminal(server, ["kubectl", "attach", "-it", "kshell"],
                               b"stty size; echo ku''be; exit 5\r")
    assert code == 0 and b"kube\r\n" in output, output
    assert f"{ROWS} {COLS}".encode() in output, output  # kubectl's resize frame reached it
    wait_until(lambda: server.get("pod", "kshell")["status"].get("phase") == "Failed", 60,
               "the shell's exit")
    state = server.get("pod", "kshell")["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 5
    server.kubectl("delete", "pod", "kshell", "--grace-period=0")


def test_old_kubectl_gets_a_clear_attach_error(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: oldclient}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"], stdin: true}
""")
    wait_running(server, "oldclient")
    kubectl_129 = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.29")
    out = subprocess.run([str(kubectl_129), "--kubeconfig", str(server.kubeconfig), "--cache-dir",
                          str(server.base / "kubecache129"), "attach", "oldclient"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode != 0 and "kubectl 1.30 or newer" in out.stderr, out.stderr
    server.kubectl("delete", "pod", "oldclient", "--grace-period=0")


def test_detach_keys_leave_the_shell_running_for_the_next_attach(server: AgentServer) -> None:
    result = dockyard(server.kubeconfig, "run", "-dit", "--name", "detacher", "busybox", "sh")
    assert result.returncode == 0, result.stderr
    wait_running(server, "detacher")
    code, output = on_terminal(server, ["attach", "detacher"],
                               b"read -r v; echo \"$v\" | od -An -tx1\r", then=(
        (b"", CTRL_P + b"z\r"),  # Ctrl-P then not Ctrl-Q: both bytes reach the shell's read
        (b"10 7a", b"echo o''ne\r"),
        (b"one\r\n", CTRL_P),  # the sequence split across two reads of the client
        (b"", CTRL_Q),
    ))  # fmt: skip
    assert code == 0 and DETACHED in output, output
    assert b"10 7a 0a" in output, output
    assert server.get("pod", "detacher")["status"].get("phase") == "Running"
    time.sleep(1)  # the shell got no end of input: it is still there, not exiting late
    wait_running(server, "detacher")
    code, output = on_terminal(server, ["attach", "detacher"], b"echo t''wo; exit 3\r")
    assert code == 3 and b"two\r\n" in output, output
    server.kubectl("delete", "pod", "detacher", "--grace-period=0")


def test_run_it_rm_with_custom_detach_keys_leaves_the_pod(server: AgentServer) -> None:
    args = ["run", "-it", "--rm", "--detach-keys", "ctrl-x,y", "--name", "keeper", "busybox", "sh"]
    code, output = on_terminal(server, args, b"echo ke''ep\r" + CTRL_P + CTRL_Q + b"\r",
                               then=((b"keep\r\n", b"\x18y"),))  # fmt: skip
    assert code == 0 and DETACHED in output, output  # Ctrl-P Ctrl-Q went to the shell instead
    assert b"dockyard rm -f keeper" in output, output  # --rm did not remove it: it says so
    assert server.get("pod", "keeper")["status"].get("phase") == "Running"
    # kubectl waits until the agent has removed the container (`rm -f` deletes at once)
    server.kubectl("delete", "pod", "keeper", "--grace-period=0")
