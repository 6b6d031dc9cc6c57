"""Helpers for the CLI's end-to-end tests: run `dockyard` as a person would, record its requests.

``dockyard(kubeconfig, *args)`` runs the installed command in a subprocess with KUBECONFIG set
and HOME pointing at an empty dir (so no ~/.kube/config leaks in). ``RecordingProxy`` is a
plain-HTTP reverse proxy on loopback in front of a real server that records every request's
method, path and query, so tests can check the CLI sends only standard Kubernetes calls.
This module holds no tests.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

DOCKYARD = str(Path(sys.executable).parent / "dockyard")


def dockyard(kubeconfig: Path | str, *args: str, stdin: str | None = None,
             timeout: float = 120, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `dockyard ARGS` with KUBECONFIG set; return the finished process (never raises)."""
    env = dict(os.environ)
    env["KUBECONFIG"] = str(kubeconfig)
    env["HOME"] = str(home or Path(kubeconfig).parent / "home")
    Path(env["HOME"]).mkdir(exist_ok=True)
    env.pop("NO_COLOR", None)
    env["COLUMNS"] = "200"
    return subprocess.run([DOCKYARD, *args], capture_output=True, text=True, input=stdin,
                          timeout=timeout, env=env, check=False)


def ok(kubeconfig: Path | str, *args: str, stdin: str | None = None,
       timeout: float = 120) -> str:
    """Run `dockyard ARGS`, assert exit 0, return stdout."""
    result = dockyard(kubeconfig, *args, stdin=stdin, timeout=timeout)
    assert result.returncode == 0, (
        f"dockyard {' '.join(args)} exited {result.returncode}: {result.stderr}{result.stdout}")
    return result.stdout


@dataclass
class RecordingProxy:
    """An HTTP reverse proxy to a dockyard server that records (method, path, query)."""

    upstream: str
    ca_file: Path
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    def start(self) -> None:
        """Start the proxy in its own thread and event loop on a free loopback port."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "proxy did not start"

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._start_app())
        ready.set()
        self._loop.run_forever()

    async def _start_app(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(
                cafile=str(self.ca_file))))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "accept", "content-type")}
        body = await request.read()
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         data=body or None, headers=headers) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                "Content-Type": upstream.headers.get("Content-Type", "application/json")})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    def kubeconfig(self, server_kubeconfig: Path, path: Path) -> Path:
        """Write a kubeconfig that reaches the server through this proxy (plain HTTP)."""
        config: dict[str, Any] = yaml.safe_load(server_kubeconfig.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"] = {"server": f"http://127.0.0.1:{self.port}"}
        path.write_text(yaml.safe_dump(config))
        return path

    def stop(self) -> None:
        """Stop the proxy and its thread."""
        if self._loop is None:
            return

        async def close() -> None:
            await self._session.close()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
