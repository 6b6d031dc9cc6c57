"""Client configuration: where the api server is and how to prove who we are, from a kubeconfig.

``load_kubeconfig`` reads kubeconfig files the way kubectl does:
- the path given, else every file in ``$KUBECONFIG`` (``os.pathsep``-separated; files that do
  not exist are skipped), else ``~/.kube/config``;
- several files merge with "first one wins": the first file that names a cluster, user or
  context defines it, and the first file that sets ``current-context`` sets it;
- relative paths (certificate-authority, client-certificate, client-key, tokenFile) are
  relative to the file that holds them;
- ``*-data`` fields are base64 PEM; ``token`` wins over ``tokenFile``;
- a user with an ``exec`` credential plugin (client.authentication.k8s.io ExecCredential, as
  cloud clusters use) has it run once at load time; its token or client certificate is used.
  The credential is not refreshed: a long-lived process re-loads the config on 401.

Invariants: a ``ClientConfig`` always has an ``https://`` or ``http://`` server URL; any error
names the file(s) read and the field or entry that is missing, so the fix is obvious.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(ValueError):
    """A kubeconfig that cannot be used: missing file, context, cluster, user or field."""


@dataclass
class ClientConfig:
    """Where the api server is and the credentials and trust to reach it."""

    server: str
    token: str | None = None
    ca_data: bytes | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    insecure: bool = False
    namespace: str = "default"
    tls_server_name: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """Build the TLS context for this config (None for a plain http:// server)."""
        if not self.server.startswith("https://"):
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data or self.ca_file:
            # A cluster CA replaces the system store, as kubectl does.
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if self.ca_data:
                ctx.load_verify_locations(cadata=self.ca_data.decode())
            if self.ca_file:
                ctx.load_verify_locations(cafile=self.ca_file)
        self._load_client_cert(ctx)
        return ctx

    def _load_client_cert(self, ctx: ssl.SSLContext) -> None:
        if self.client_cert_data or self.client_key_data:
            # ssl only loads certificates from files: write them to a private dir, then remove.
            with tempfile.TemporaryDirectory(prefix="dockyard-cert-") as tmp:
                cert = _write_private(Path(tmp) / "cert.pem", self.client_cert_data)
                key = _write_private(Path(tmp) / "key.pem", self.client_key_data)
                ctx.load_cert_chain(cert or self.client_cert or "", key or self.client_key)
        elif self.client_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)


def _write_private(path: Path, data: bytes | None) -> str | None:
    if data is None:
        return None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return str(path)


def load_kubeconfig(path: str | None = None, context: str | None = None) -> ClientConfig:
    """Load a ClientConfig from kubeconfig file(s), as kubectl picks and merges them."""
    files = _kubeconfig_files(path)
    merged, origin = _merge(files)
    where = ", ".join(str(f) for f in files)
    name = context or merged["current-context"]
    if not name:
        raise KubeconfigError(f"{where}: no current-context set and no context given")
    ctx = merged["contexts"].get(name)
    if ctx is None:
        raise KubeconfigError(f"{where}: context {name!r} not found")
    cluster_name = ctx.get("cluster")
    if not cluster_name or cluster_name not in merged["clusters"]:
        raise KubeconfigError(f"{where}: context {name!r} names cluster {cluster_name!r}, "
                              "which is not defined")
    cluster = merged["clusters"][cluster_name]
    cluster_file = origin[("clusters", cluster_name)]
    user_name = ctx.get("user")
    user: dict[str, Any] = {}
    user_file = cluster_file
    if user_name:
        if user_name not in merged["users"]:
            raise KubeconfigError(f"{where}: context {name!r} names user {user_name!r}, "
                                  "which is not defined")
        user = merged["users"][user_name]
        user_file = origin[("users", user_name)]
    config = _cluster_config(cluster, cluster_name, cluster_file)
    _apply_user(config, user, user_name or "", user_file)
    config.namespace = ctx.get("namespace") or "default"
    return config


def _kubeconfig_files(path: str | None) -> list[Path]:
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise KubeconfigError(f"kubeconfig {p} does not exist")
        return [p]
    env = os.environ.get("KUBECONFIG", "")
    if env:
        listed = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
        found = [p for p in listed if p.is_file()]
        if not found:
            raise KubeconfigError(f"none of the KUBECONFIG files exist: {env}")
        return found
    default = Path("~/.kube/config").expanduser()
    if not default.is_file():
        raise KubeconfigError(
            f"no kubeconfig: {default} does not exist and KUBECONFIG is not set — "
            "start a server with `dockyard server` (it writes one) or pass --kubeconfig"
        )
    return [default]


def _merge(files: list[Path]) -> tuple[dict[str, Any], dict[tuple[str, str], Path]]:
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    origin: dict[tuple[str, str], Path] = {}
    for f in files:
        doc = _read_yaml(f)
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = str(doc["current-context"])
        for section, field in (("clusters", "cluster"), ("users", "user"),
                               ("contexts", "context")):
            for entry in doc.get(section) or []:
                if not isinstance(entry, dict) or "name" not in entry:
                    raise KubeconfigError(f"{f}: an entry in {section} has no name")
                key = str(entry["name"])
                if key not in merged[section]:
                    merged[section][key] = entry.get(field) or {}
                    origin[(section, key)] = f
    return merged, origin


def _read_yaml(f: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(f.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise KubeconfigError(f"{f}: cannot read kubeconfig: {e}") from e
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{f}: not a kubeconfig (top level is not a mapping)")
    return doc


def _cluster_config(cluster: dict[str, Any], name: str, f: Path) -> ClientConfig:
    server = str(cluster.get("server") or "")
    if not server:
        raise KubeconfigError(f"{f}: cluster {name!r} has no server")
    if "://" not in server:
        server = "https://" + server
    config = ClientConfig(server=server.rstrip("/"))
    config.insecure = bool(cluster.get("insecure-skip-tls-verify", False))
    config.tls_server_name = cluster.get("tls-server-name") or None
    if cluster.get("certificate-authority-data"):
        config.ca_data = _b64(cluster["certificate-authority-data"], f, name,
                              "certificate-authority-data")
    elif cluster.get("certificate-authority"):
        config.ca_file = _existing(cluster["certificate-authority"], f, "certificate-authority")
    return config


def _apply_user(config: ClientConfig, user: dict[str, Any], name: str, f: Path) -> None:
    if user.get("token"):
        config.token = str(user["token"]).strip()
    elif user.get("tokenFile"):
        token_file = _existing(user["tokenFile"], f, "tokenFile")
        config.token = Path(token_file).read_text().strip()
    if user.get("client-certificate-data"):
        config.client_cert_data = _b64(user["client-certificate-data"], f, name,
                                       "client-certificate-data")
    elif user.get("client-certificate"):
        config.client_cert = _existing(user["client-certificate"], f, "client-certificate")
    if user.get("client-key-data"):
        config.client_key_data = _b64(user["client-key-data"], f, name, "client-key-data")
    elif user.get("client-key"):
        config.client_key = _existing(user["client-key"], f, "client-key")
    has_cert = config.client_cert or config.client_cert_data
    has_key = config.client_key or config.client_key_data
    if bool(has_cert) != bool(has_key):
        raise KubeconfigError(f"{f}: user {name!r} has a client certificate without a key "
                              "or a key without a certificate")
    if not config.token and not has_cert and user.get("exec"):
        _run_exec_plugin(config, user["exec"], name, f)
    elif not config.token and not has_cert and "auth-provider" in user:
        raise KubeconfigError(f"{f}: user {name!r} uses an auth-provider plugin, which "
                              "dockyard does not run; give a token, client certificate or exec")


def _run_exec_plugin(config: ClientConfig, spec: Any, name: str, f: Path) -> None:
    """Run a client-go credential plugin (``users[].user.exec``) once and take its credential."""
    if not isinstance(spec, dict) or not spec.get("command"):
        raise KubeconfigError(f"{f}: user {name!r} has an exec section without a command")
    api_version = str(spec.get("apiVersion") or "client.authentication.k8s.io/v1")
    command = str(spec["command"])
    if "/" in command and not Path(command).is_absolute():
        command = str(f.parent / command)  # relative to the kubeconfig, as client-go does
    env = dict(os.environ)
    env.update({str(e.get("name")): str(e.get("value", "")) for e in spec.get("env") or []
                if isinstance(e, dict)})
    env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": api_version,
                                              "kind": "ExecCredential",
                                              "spec": {"interactive": False}})
    argv = [command, *[str(a) for a in spec.get("args") or []]]
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        hint = f" ({spec['installHint'].strip()})" if spec.get("installHint") else ""
        raise KubeconfigError(f"{f}: exec plugin of user {name!r} could not run "
                              f"{command!r}: {e}{hint}") from e
    if done.returncode != 0:
        raise KubeconfigError(f"{f}: exec plugin {command!r} of user {name!r} exited with "
                              f"{done.returncode}: {done.stderr.strip()[:500]}")
    try:
        status = json.loads(done.stdout)["status"]
    except (ValueError, KeyError, TypeError) as e:
        raise KubeconfigError(f"{f}: exec plugin {command!r} of user {name!r} did not print "
                              "an ExecCredential with a status") from e
    if status.get("token"):
        config.token = str(status["token"])
    elif status.get("clientCertificateData") and status.get("clientKeyData"):
        config.client_cert_data = str(status["clientCertificateData"]).encode()
        config.client_key_data = str(status["clientKeyData"]).encode()
    else:
        raise KubeconfigError(f"{f}: exec plugin {command!r} of user {name!r} returned neither "
                              "a token nor a client certificate and key")


def _b64(value: Any, f: Path, entry: str, field: str) -> bytes:
    try:
        return base64.b64decode("".join(str(value).split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise KubeconfigError(f"{f}: {field} of {entry!r} is not valid base64: {e}") from e


def _existing(value: Any, f: Path, field: str) -> str:
    p = Path(str(value)).expanduser()
    if not p.is_absolute():
        p = f.parent / p
    if not p.is_file():
        raise KubeconfigError(f"{f}: {field} {p} does not exist")
    return str(p)
