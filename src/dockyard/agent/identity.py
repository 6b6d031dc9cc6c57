"""The agent's identity: its node token (traded once for a join token) and serving certificate.

Files under DATA_DIR/agent/<node>/: `node-token` (0600) and `serving.crt`/`serving.key`, a
self-signed ECDSA P-256 certificate for the agent's HTTPS endpoint. The agent publishes that
certificate in its Node's annotation `dockyard.io/serving-cert`; the api server trusts exactly
that certificate when it connects (a Node object is writable only by its own node token and
admins), and the agent accepts only clients presenting a certificate signed by the cluster CA
with the api server's name (see api/node_proxy.py).

Invariants:
- A join token is exchanged at most once per node and data dir: the node token is kept.
- Key files are written atomically with mode 0600 and never logged.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.client import ApiClient, ClientConfig

SERVING_CERT_ANNOTATION = "dockyard.io/serving-cert"
API_SERVER_CLIENT_NAME = "system:dockyard:apiserver"  # CN the agent requires of its clients


def identity_dir(data_dir: Path, node_name: str) -> Path:
    """Return where a node's agent keeps its token and certificate."""
    path = data_dir / "agent" / node_name
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


async def node_token(config: ClientConfig, node_name: str, directory: Path) -> str:
    """Return the node's token, trading the configured join (or admin) token once."""
    path = directory / "node-token"
    if path.exists():
        return path.read_text().strip()
    async with ApiClient(config, user_agent=f"dockyard-agent/{node_name}") as api:
        answer = await api.request("POST", "/dockyard/v1/join", body={"nodeName": node_name})
    token = str(answer["token"])
    write_private(path, (token + "\n").encode())
    return token


def serving_certificate(directory: Path, node_ip: str, node_name: str) -> tuple[Path, Path]:
    """Return (cert, key) paths of the agent's serving certificate, made on first use."""
    cert_path, key_path = directory / "serving.crt", directory / "serving.key"
    if cert_path.exists() and key_path.exists() and _covers(cert_path, node_ip):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    common_name = f"{node_name}@{int(now.timestamp())}"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    sans: list[x509.GeneralName] = [x509.DNSName(node_name)]
    if node_ip:
        sans.append(x509.IPAddress(ipaddress.ip_address(node_ip)))
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _covers(cert_path: Path, node_ip: str) -> bool:
    if not node_ip:
        return True
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return ipaddress.ip_address(node_ip) in sans.get_values_for_type(x509.IPAddress)


def write_private(path: Path, data: bytes) -> None:
    """Write a file with mode 0600 atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
