"""Running iptables for the proxy: atomic rule writes, the jump rules, and cleaning up.

Rules are written with one ``iptables-restore --noflush`` per sync (each table is replaced in
one kernel transaction, so no packet sees half a sync and 1,000 services cost one process, not
thousands). Only chains starting with the instance's prefix are ever created, flushed or
deleted; the built-in chains get one jump rule each, carrying a comment that names the
instance, and lose it again on ``remove_all``.

``route_localnet`` (needed so 127.0.0.1:nodePort can be DNATed out to a pod) is set on the pod
bridge alone, never on ``all``, and put back to what it was when the proxy stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# (table, built-in chain, our chain's suffix, extra match) for every jump rule we own.
JUMPS = (
    ("nat", "PREROUTING", "SERVICES", ""),
    ("nat", "OUTPUT", "SERVICES", ""),
    ("nat", "POSTROUTING", "POSTRTG", ""),
    ("filter", "INPUT", "SERVICES", "-m conntrack --ctstate NEW"),
    ("filter", "FORWARD", "SERVICES", "-m conntrack --ctstate NEW"),
    ("filter", "OUTPUT", "SERVICES", "-m conntrack --ctstate NEW"),
)


class IptablesError(RuntimeError):
    """An iptables command failed (its stderr is in the message)."""


async def run(argv: list[str], stdin: bytes | None = None) -> str:
    """Run a command; return its stdout or raise IptablesError with its stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        raise IptablesError(f"{' '.join(argv[:4])}: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


async def restore(text: str) -> None:
    """Apply iptables-restore input without flushing anything it does not name."""
    await run(["iptables-restore", "-w", "5", "--noflush"], text.encode())


async def our_chains(prefix: str) -> dict[str, set[str]]:
    """Return the chains, per table, whose names start with prefix."""
    found: dict[str, set[str]] = {"nat": set(), "filter": set()}
    for table in found:
        text = await run(["iptables-save", "-t", table])
        found[table] = {line[1:].split()[0] for line in text.splitlines()
                        if line.startswith(f":{prefix}")}
    return found


def _jump_args(chain: str, target: str, extra: str, tag: str) -> list[str]:
    return [chain, *extra.split(), "-m", "comment", "--comment", f"dockyard proxy {tag}",
            "-j", target]


async def ensure_jumps(prefix: str, tag: str) -> None:
    """Insert the jump rules from the built-in chains to ours (once each)."""
    for table, chain, suffix, extra in JUMPS:
        args = _jump_args(chain, prefix + suffix, extra, tag)
        try:
            await run(["iptables", "-w", "5", "-t", table, "-C", *args])
        except IptablesError:
            await run(["iptables", "-w", "5", "-t", table, "-I", *args])


async def remove_all(prefix: str, tag: str) -> None:
    """Remove our jump rules, then flush and delete every chain of ours."""
    for table, chain, suffix, extra in JUMPS:
        args = _jump_args(chain, prefix + suffix, extra, tag)
        while True:
            try:
                await run(["iptables", "-w", "5", "-t", table, "-D", *args])
            except IptablesError:
                break
    chains = await our_chains(prefix)
    lines = []
    for table in ("filter", "nat"):
        if chains[table]:
            lines += [f"*{table}", *(f":{c} - [0:0]" for c in sorted(chains[table])),
                      *(f"-X {c}" for c in sorted(chains[table])), "COMMIT"]
    if lines:
        await restore("\n".join(lines) + "\n")


@dataclass
class RouteLocalnet:
    """Sets net.ipv4.conf.<bridge>.route_localnet=1 and restores the old value."""

    bridge: str
    original: str | None = None

    @property
    def path(self) -> Path:
        """Return the sysctl file of the bridge."""
        return Path("/proc/sys/net/ipv4/conf") / self.bridge / "route_localnet"

    def ensure(self) -> None:
        """Turn route_localnet on for the bridge once it exists (remembering its old value)."""
        try:
            current = self.path.read_text().strip()
        except OSError:
            return  # no bridge yet: the first pod's sandbox creates it
        if current != "1":
            self.original = current if self.original is None else self.original
            self.path.write_text("1")
        elif self.original is None:
            self.original = "1"

    def restore(self) -> None:
        """Put the bridge's route_localnet back as it was."""
        if self.original is not None and self.original != "1":
            # The bridge may have gone with its last pod: then there is nothing to restore.
            with contextlib.suppress(OSError):
                self.path.write_text(self.original)
        self.original = None
