"""Liveness, readiness and startup probes (httpGet, tcpSocket, exec) with Kubernetes' timing.

One `Prober` task per probe of a running container. It waits initialDelaySeconds after the
container started, then probes every periodSeconds with timeoutSeconds, and flips its result
after failureThreshold consecutive failures or successThreshold consecutive successes.

Invariants (as the kubelet's prober):
- readiness starts False, liveness and startup start as "unknown" (neither kills nor passes);
- while a startup probe has not succeeded, liveness and readiness probes do not run;
- a startup probe that succeeded stops probing; one that failed failureThreshold times asks
  for a restart, like a failed liveness probe;
- httpGet succeeds on 200–399; tcpSocket when the connection opens; exec when it exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from dockyard.runtime import Runtime

Obj = dict[str, Any]
Outcome = tuple[bool, str]  # (success, message on failure)


@dataclass
class ProbeState:
    """What one probe has concluded so far."""

    kind: str  # liveness | readiness | startup
    result: bool | None = None  # None: not yet decided
    successes: int = 0
    failures: int = 0


def named_port(container: Obj, port: Any) -> int:
    """Return a probe's port number (ports may be named after the container's ports)."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"probe port {port!r} is not a number nor a named container port")


async def run_probe(probe: Obj, container: Obj, pod_ip: str, runtime: Runtime,
                    container_id: str) -> Outcome:  # fmt: skip
    """Run a probe or lifecycle handler once; return (success, message)."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "exec" in probe:
            cmd = [str(c) for c in probe["exec"].get("command") or []]
            result = await runtime.exec_sync(container_id, cmd, timeout=timeout)
            if result.timed_out:
                return False, f"command timed out after {timeout:g}s"
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            return result.exit_code == 0, output or f"exit code {result.exit_code}"
        if "httpGet" in probe:
            return await asyncio.wait_for(_http(probe["httpGet"], container, pod_ip), timeout)
        if "tcpSocket" in probe:
            port = named_port(container, probe["tcpSocket"].get("port"))
            host = probe["tcpSocket"].get("host") or pod_ip
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return True, ""
    except TimeoutError:
        return False, f"timeout after {timeout:g}s"
    except (OSError, aiohttp.ClientError, ValueError) as e:
        return False, str(e) or type(e).__name__
    except Exception as e:  # a runtime error (container gone) is a failed probe, not a crash
        return False, str(e) or type(e).__name__
    return False, "the probe has no handler (exec, httpGet or tcpSocket)"


def _probe_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the kubelet does not verify probe certificates either
    return context


# Made once: loading the trust store per probe costs tens of milliseconds of the event loop.
_PROBE_TLS = _probe_tls()


async def _http(get: Obj, container: Obj, pod_ip: str) -> Outcome:
    port = named_port(container, get.get("port"))
    scheme = str(get.get("scheme", "HTTP")).lower()
    host = get.get("host") or pod_ip
    path = str(get.get("path") or "/")
    url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
    headers = {"User-Agent": "kube-probe/1.31"}
    for h in get.get("httpHeaders") or []:
        headers[str(h.get("name"))] = str(h.get("value", ""))
    async with aiohttp.ClientSession() as session, session.get(
        url, headers=headers, ssl=_PROBE_TLS if scheme == "https" else False,
        allow_redirects=False,
    ) as resp:
        await resp.content.read(10 * 1024)
        if 200 <= resp.status < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {resp.status}"


class Prober:
    """Runs one probe of one container until stopped, reporting changes to a callback."""

    def __init__(self, kind: str, probe: Obj, container: Obj, pod_ip: str, runtime: Runtime,
                 container_id: str, started_at: float,
                 on_change: Callable[[ProbeState, str], Awaitable[None]],
                 gate: Callable[[], bool]) -> None:  # fmt: skip
        self.state = ProbeState(kind)
        self.probe = probe
        self.container = container
        self.pod_ip = pod_ip
        self.runtime = runtime
        self.container_id = container_id
        self.started_at = started_at
        self.on_change = on_change
        self.gate = gate  # False while the startup probe has not succeeded
        self.task = asyncio.create_task(self._run(), name=f"probe-{kind}-{container_id[:12]}")

    async def stop(self) -> None:
        """Stop probing."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task

    async def _run(self) -> None:
        delay = float(self.probe.get("initialDelaySeconds", 0))
        period = max(1.0, float(self.probe.get("periodSeconds", 10)))
        await asyncio.sleep(max(0.0, self.started_at + delay - time.time()))
        while True:
            if self.gate():
                await self._once()
                if self.state.kind == "startup" and self.state.result:
                    return
            await asyncio.sleep(period)

    async def _once(self) -> None:
        ok, message = await run_probe(self.probe, self.container, self.pod_ip, self.runtime,
                                      self.container_id)  # fmt: skip
        state = self.state
        if ok:
            state.successes, state.failures = state.successes + 1, 0
            threshold = int(self.probe.get("successThreshold", 1))
            if state.result is not True and state.successes >= threshold:
                state.result = True
                await self.on_change(state, "")
        else:
            state.failures, state.successes = state.failures + 1, 0
            threshold = int(self.probe.get("failureThreshold", 3))
            await self.on_change(state, message)  # every failure is an Unhealthy event
            if state.failures >= threshold and state.result is not False:
                state.result = False
                await self.on_change(state, "")
            if state.failures >= threshold and state.kind != "readiness":
                state.failures = 0  # the container is restarted; count afresh
