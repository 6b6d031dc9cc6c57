"""Bearer tokens: who a request is.

Three kinds, kept as SHA-256 digests in DATA_DIR/tokens.json (the tokens themselves are shown
once: in the admin kubeconfig, DATA_DIR/node-token, or `dockyard token create`):
- admin: the cluster administrator (group system:masters), written into DATA_DIR/kubeconfig;
- join: lets a new agent register itself once, trading its node name for a node token;
- node: acts only for one node (user system:node:NAME, as Kubernetes' node authorizer names it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

TokenKind = Literal["admin", "join", "node"]


@dataclass(frozen=True)
class User:
    """The authenticated caller of a request."""

    name: str
    groups: tuple[str, ...]
    kind: TokenKind
    node: str | None = None

    @property
    def is_admin(self) -> bool:
        """Tell whether the user may do everything."""
        return "system:masters" in self.groups


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenFile:
    """The tokens a server accepts, persisted under its data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "tokens.json"
        self._users: dict[str, User] = {}
        self._seen: tuple[int, int, int] | None = None  # the file's mtime, size, inode read
        self.reload()

    def reload(self) -> None:
        """Read the token file again (another process may have added tokens)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._users, self._seen = {}, None
            return
        seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if seen == self._seen:
            return  # unchanged: unknown tokens must not cost a read and a parse each
        self._seen = seen
        entries = json.loads(self.path.read_text())
        self._users = {
            e["sha256"]: User(e["user"], tuple(e["groups"]), e["kind"], e.get("node"))
            for e in entries
        }

    def authenticate(self, token: str) -> User | None:
        """Return the user a token belongs to, or None."""
        user = self._users.get(_digest(token))
        if user is None:
            # Tokens made by `dockyard token create` in another process appear without a restart.
            self.reload()
            user = self._users.get(_digest(token))
        return user

    def create(self, kind: TokenKind, node: str | None = None) -> str:
        """Make and persist a new token of a kind; return the token."""
        token = f"dy{kind[0]}_{secrets.token_urlsafe(32)}"
        if kind == "admin":
            user = User("admin", ("system:masters", "system:authenticated"), "admin")
        elif kind == "join":
            user = User("system:bootstrap:join", ("system:bootstrappers",), "join")
        else:
            if not node:
                raise ValueError("a node token needs the node's name")
            user = User(f"system:node:{node}", ("system:nodes",), "node", node)
        self._append(_digest(token), user)
        return token

    def _append(self, digest: str, user: User) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = json.loads(self.path.read_text()) if self.path.exists() else []
            entries.append(
                {"sha256": digest, "user": user.name, "groups": list(user.groups),
                 "kind": user.kind, "node": user.node}
            )
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(entries, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        self._users[digest] = user
