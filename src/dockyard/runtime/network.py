"""Pod networking: pinned namespaces per sandbox and the CNI plugins, invoked directly.

A sandbox's network, UTS and IPC namespaces are made once by `unshare --net=FILE ...` and
pinned by bind mounts under the sandbox's run dir (as CRI-O's pinns does; no pause process).
The CNI plugins of Debian's containernetworking-plugins are run as executables, following the
CNI 1.0.0 spec for a network configuration list: `bridge` (host-local IPAM on our bridge and
pod CIDR, isGateway, hairpin) then `portmap` (host ports, including 127.0.0.1), plus
`loopback` for `lo`.

Outbound masquerading is one rule set per runtime (chain DY-MASQ-<tag>, jumped to from
POSTROUTING for the pod CIDR), made with the first sandbox, rather than the bridge plugin's
ipMasq, which adds and removes a chain per pod: that cost ~90 ms of each ~160 ms sandbox
create and ~60 ms of each delete here. portmap is skipped for a sandbox without host ports
(it would do nothing on ADD and only look for chains on DEL).

Invariants:
- The network name, bridge and IPAM data dir are the runtime's own (the data dir under its
  run dir), so side-by-side runtimes never hand out the same address or share a bridge.
- ADD results are kept by the caller and given back to DEL as prevResult (the spec's rule);
  DEL runs the list in reverse and tolerates pieces already gone, so teardown is idempotent.
- 127.0.0.1:HOSTPORT works because portmap (snat on) sets route_localnet on the bridge and
  masquerades hairpinned loopback traffic; we check that it did.
- `destroy` removes the bridge, the IPAM dir, our masquerade chain and the shared portmap
  chains, the latter only when no other runtime on the host still has a port mapped through
  them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import os
import shlex
import shutil
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.runtime.rootfs import unmount

CNI_VERSION = "1.0.0"
NAMESPACE_KINDS = ("net", "uts", "ipc")
PORTMAP_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")
PORTMAP_JUMPS = (
    ("PREROUTING", "-m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"),
    ("OUTPUT", "-m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"),
    ("POSTROUTING", "-m comment --comment \"CNI portfwd requiring masquerade\" "
                    "-j CNI-HOSTPORT-MASQ"),
)  # fmt: skip


class NetworkError(RuntimeError):
    """A namespace or CNI step failed; the message names the plugin and its error."""


@dataclass(frozen=True)
class PortMapping:
    """A host port forwarded to a container port (`-p [host_ip:]host_port:container_port`)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def to_cni(self) -> dict[str, Any]:
        """Return the portmap plugin's runtimeConfig entry."""
        entry: dict[str, Any] = {"hostPort": self.host_port, "containerPort": self.container_port,
                                 "protocol": self.protocol.lower()}  # fmt: skip
        if self.host_ip:
            entry["hostIP"] = self.host_ip
        return entry


def validate_port_mappings(mappings: Sequence[PortMapping]) -> None:
    """Raise NetworkError if a port or protocol is invalid or a host port is repeated."""
    seen = set()
    for m in mappings:
        for port, what in ((m.host_port, "host port"), (m.container_port, "container port")):
            if not 1 <= port <= 65535:
                raise NetworkError(f"port mapping: {what} {port} is not in 1..65535")
        if m.protocol.lower() not in ("tcp", "udp", "sctp"):
            raise NetworkError(f"port mapping: protocol {m.protocol!r} is not tcp, udp or sctp")
        key = (m.host_ip, m.host_port, m.protocol.lower())
        if key in seen:
            raise NetworkError(f"port mapping: host port {m.host_port} is mapped twice")
        seen.add(key)


@dataclass(frozen=True)
class Namespaces:
    """The pinned namespace files of one sandbox."""

    net: Path
    uts: Path
    ipc: Path


def namespace_paths(sandbox_dir: Path) -> Namespaces:
    """Return where a sandbox's namespaces are pinned."""
    ns = sandbox_dir / "ns"
    return Namespaces(net=ns / "net", uts=ns / "uts", ipc=ns / "ipc")


async def create_namespaces(sandbox_dir: Path, hostname: str) -> Namespaces:
    """Make and pin a sandbox's net, uts and ipc namespaces; set its hostname."""
    paths = namespace_paths(sandbox_dir)
    paths.net.parent.mkdir(parents=True, exist_ok=True)
    for path in (paths.net, paths.uts, paths.ipc):
        path.touch()
    await _run(["unshare", f"--net={paths.net}", f"--uts={paths.uts}", f"--ipc={paths.ipc}",
                "hostname", hostname], "unshare")  # fmt: skip
    return paths


def remove_namespaces(sandbox_dir: Path) -> None:
    """Unpin and delete a sandbox's namespace files (idempotent)."""
    paths = namespace_paths(sandbox_dir)
    for path in (paths.net, paths.uts, paths.ipc):
        unmount(path)
        path.unlink(missing_ok=True)


async def _run(argv: list[str], what: str, stdin: bytes | None = None,
               env: dict[str, str] | None = None) -> bytes:  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        detail = _cni_error(out) or err.decode(errors="replace").strip()
        raise NetworkError(f"{what}: {detail or f'exit status {proc.returncode}'}")
    return out


def _cni_error(out: bytes) -> str:
    try:
        data = json.loads(out)
    except ValueError:
        return ""
    if isinstance(data, dict) and "msg" in data:
        return f"{data['msg']} {data.get('details', '')}".strip()
    return ""


class CniNetwork:
    """The CNI network of one runtime: its bridge, pod CIDR and IPAM state."""

    def __init__(self, *, run_dir: Path, bridge: str, pod_cidr: str, cni_bin_dir: Path) -> None:
        if not 1 <= len(bridge) <= 15 or not bridge.replace("-", "").replace("_", "").isalnum():
            raise NetworkError(f"bridge name {bridge!r} must be 1-15 letters, digits, - or _")
        self.bridge = bridge
        self.pod_cidr = pod_cidr
        self.cni_bin_dir = cni_bin_dir
        self.ipam_dir = run_dir / "cni" / "networks"
        tag = hashlib.sha256(str(run_dir).encode()).hexdigest()[:8]
        self.name = f"dockyard-{tag}"
        self.masq_chain = f"DY-MASQ-{tag}"
        self._masq_ready = False
        self._masq_lock = asyncio.Lock()

    def conflist(self) -> dict[str, Any]:
        """Return the network configuration list (cniVersion 1.0.0)."""
        return {
            "cniVersion": CNI_VERSION,
            "name": self.name,
            "plugins": [
                {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
                 "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": self.pod_cidr}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.ipam_dir)}},
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            ],
        }  # fmt: skip

    def _env(self, command: str, container_id: str, netns: Path, ifname: str) -> dict[str, str]:
        return {
            "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": str(netns),
            "CNI_IFNAME": ifname, "CNI_PATH": str(self.cni_bin_dir),
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }  # fmt: skip

    async def _invoke(self, plugin: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        binary = self.cni_bin_dir / plugin["type"]
        if not binary.is_file():
            raise NetworkError(f"CNI plugin {plugin['type']} not found in {self.cni_bin_dir}")
        out = await _run([str(binary)], f"CNI {plugin['type']} {env['CNI_COMMAND']}",
                         json.dumps(plugin).encode(), env)  # fmt: skip
        return dict(json.loads(out)) if out.strip() else {}

    def _plugin_conf(self, plugin: dict[str, Any], prev: dict[str, Any] | None,
                     ports: Sequence[PortMapping]) -> dict[str, Any]:  # fmt: skip
        conf = {"cniVersion": CNI_VERSION, "name": self.name, **plugin}
        if prev is not None:
            conf["prevResult"] = prev
        if plugin.get("capabilities", {}).get("portMappings"):
            conf["runtimeConfig"] = {"portMappings": [p.to_cni() for p in ports]}
        return conf

    async def add(
        self, sandbox_id: str, netns: Path, ports: Sequence[PortMapping]
    ) -> dict[str, Any]:
        """Attach a sandbox: loopback up, then the list's ADDs; return the final result."""
        validate_port_mappings(ports)
        await self._invoke({"cniVersion": CNI_VERSION, "name": "lo", "type": "loopback"},
                           self._env("ADD", sandbox_id, netns, "lo"))  # fmt: skip
        env = self._env("ADD", sandbox_id, netns, "eth0")
        result: dict[str, Any] | None = None
        try:
            await self._ensure_masquerade()
            for plugin in self._plugins(ports):
                result = await self._invoke(self._plugin_conf(plugin, result, ports), env)
        except BaseException:
            await self.delete(sandbox_id, netns, ports, result)
            raise
        assert result is not None
        self._check_localnet()
        return result

    async def delete(
        self, sandbox_id: str, netns: Path, ports: Sequence[PortMapping],
        prev: dict[str, Any] | None, pod_masquerade: bool = False,
    ) -> None:  # fmt: skip
        """Detach a sandbox: the list's DELs in reverse; every plugin runs even if one fails.

        pod_masquerade: the sandbox was attached with the bridge plugin's ipMasq (an older
        dockyard), so the DEL must remove that per-pod chain too.
        """
        env = self._env("DEL", sandbox_id, netns if netns.exists() else Path(""), "eth0")
        errors = []
        plugins = self._plugins(ports)
        if pod_masquerade:
            plugins = [{**p, "ipMasq": True} if p["type"] == "bridge" else p for p in plugins]
        for plugin in reversed(plugins):
            try:
                await self._invoke(self._plugin_conf(plugin, prev, ports), env)
            except NetworkError as e:
                errors.append(str(e))
        if errors:
            raise NetworkError("; ".join(errors))

    def _plugins(self, ports: Sequence[PortMapping]) -> list[dict[str, Any]]:
        plugins: list[dict[str, Any]] = self.conflist()["plugins"]
        return [p for p in plugins if ports or p["type"] != "portmap"]

    def _masq_rules(self) -> list[list[str]]:
        chain = self.masq_chain
        return [
            ["-A", chain, "-d", self.pod_cidr, "-j", "ACCEPT"],
            ["-A", chain, "!", "-d", "224.0.0.0/4", "-j", "MASQUERADE"],
        ]

    def _masq_jump(self) -> list[str]:
        return ["POSTROUTING", "-s", self.pod_cidr, "-m", "comment", "--comment",
                f"{self.name} masquerade", "-j", self.masq_chain]  # fmt: skip

    async def _ensure_masquerade(self) -> None:
        """Make our masquerade chain and its POSTROUTING jump, once (idempotent)."""
        async with self._masq_lock:
            if not self._masq_ready:
                await self._make_masquerade()
                self._masq_ready = True

    async def _make_masquerade(self) -> None:
        nat = ["iptables", "-w", "-t", "nat"]
        try:
            await _run([*nat, "-S", self.masq_chain], "iptables")
        except NetworkError:
            await _run([*nat, "-N", self.masq_chain], "iptables")
            for rule in self._masq_rules():
                await _run([*nat, *rule], "iptables")
        try:
            await _run([*nat, "-C", *self._masq_jump()], "iptables")
        except NetworkError:
            await _run([*nat, "-A", *self._masq_jump()], "iptables")

    async def _remove_masquerade(self) -> None:
        nat = ["iptables", "-w", "-t", "nat"]
        with contextlib.suppress(NetworkError):
            await _run([*nat, "-D", *self._masq_jump()], "iptables")
        for op in ("-F", "-X"):
            with contextlib.suppress(NetworkError):
                await _run([*nat, op, self.masq_chain], "iptables")
        self._masq_ready = False

    def _check_localnet(self) -> None:
        flag = Path(f"/proc/sys/net/ipv4/conf/{self.bridge}/route_localnet")
        if flag.exists() and flag.read_text().strip() != "1":
            # portmap sets this only when a mapping exists; set it so 127.0.0.1 works later.
            flag.write_text("1")

    async def destroy(self) -> None:
        """Remove the bridge, IPAM state and, if unused by anyone, portmap's shared chains."""
        if Path(f"/sys/class/net/{self.bridge}").exists():
            await _run(["ip", "link", "del", self.bridge], "remove bridge")
        shutil.rmtree(self.ipam_dir / self.name, ignore_errors=True)
        await self._remove_masquerade()
        await remove_unused_portmap_chains()


async def remove_unused_portmap_chains() -> None:
    """Delete portmap's shared nat chains when no port mapping (CNI-DN-*) uses them."""
    save = (await _run(["iptables-save", "-t", "nat"], "iptables-save")).decode()
    if ":CNI-HOSTPORT-DNAT" not in save or "-j CNI-DN-" in save:
        return
    for chain, rule in PORTMAP_JUMPS:
        argv = ["iptables", "-w", "-t", "nat", "-D", chain, *shlex.split(rule)]
        with contextlib.suppress(NetworkError):  # not there: another runtime removed it
            await _run(argv, "iptables")
    for chain in PORTMAP_CHAINS:
        for op in ("-F", "-X"):
            with contextlib.suppress(NetworkError):
                await _run(["iptables", "-w", "-t", "nat", op, chain], "iptables")



CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def connect_in_netns(netns: Path, port: int, timeout: float = 10.0) -> socket.socket:
    """Return a TCP connection to 127.0.0.1:port made inside the namespace `netns`.

    A socket keeps the namespace it was made in, so only the connect runs inside: in a
    thread of its own, since setns(2) moves just the calling thread; if moving back failed,
    that thread ends with its namespace and the process is untouched.
    """
    if not 1 <= port <= 65535:
        raise NetworkError(f"port-forward: port {port} is not in 1..65535")
    result: dict[str, Any] = {}

    def run() -> None:
        with open("/proc/thread-self/ns/net", "rb") as home, open(netns, "rb") as target:
            if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
                result["error"] = OSError(ctypes.get_errno(), "setns into the sandbox failed")
                return
            try:
                result["socket"] = socket.create_connection(("127.0.0.1", port), timeout)
            except OSError as e:
                result["error"] = e
            finally:
                if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                    result["stuck"] = True  # the thread ends here; nothing else used it

    thread = threading.Thread(target=run, name=f"netns-connect-{port}", daemon=True)
    thread.start()
    thread.join()
    if "socket" in result:
        sock: socket.socket = result["socket"]
        sock.settimeout(None)
        return sock
    raise NetworkError(f"port-forward to port {port} in the sandbox: {result.get('error')}")
