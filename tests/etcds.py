"""Start real etcd servers (Debian's etcd-server) for tests and benches: free loopback ports,
data in a given temp dir, stopped by PID. Optionally TLS with a throwaway CA made here.

Synchronous, so module-scoped fixtures and bench scripts can use it around subprocesses;
async tests (the store contract's EtcdHarness) call it through asyncio.to_thread.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def etcd_installed() -> bool:
    """Tell whether the etcd binary is here."""
    return os.access(ETCD, os.X_OK)


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class EtcdCerts:
    """A CA, etcd's serving pair and a client pair, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass
class RunningEtcd:
    """An etcd process a test started."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    certs: EtcdCerts | None = None
    args: list[str] = field(default_factory=list)

    @property
    def store_spec(self) -> str:
        """Return the --store value naming this etcd."""
        host = self.url.split("://", 1)[1]
        return f"etcd+https://{host}" if self.certs else f"etcd://{host}"

    def stop(self) -> None:
        """Stop etcd by its PID and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def restart(self) -> None:
        """Stop etcd and start it again on the same ports and data."""
        self.stop()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=out)
        _wait_until_answering(self)


def start_etcd(workdir: Path, certs: EtcdCerts | None = None) -> RunningEtcd:
    """Start etcd with its data under workdir; return once it answers (TLS if certs given)."""
    workdir.mkdir(parents=True, exist_ok=True)
    scheme = "https" if certs else "http"
    url = f"{scheme}://127.0.0.1:{free_port()}"
    peer = f"http://127.0.0.1:{free_port()}"
    args = [
        ETCD, "--name", "test", "--data-dir", str(workdir / "etcd"),
        "--listen-client-urls", url, "--advertise-client-urls", url,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"test={peer}",
        "--max-request-bytes", str(3 * 1024 * 1024),  # 1.5 MiB values plus the request
        "--logger", "zap", "--log-level", "error",
    ]
    if certs:
        args += ["--cert-file", str(certs.server_cert), "--key-file", str(certs.server_key),
                 "--trusted-ca-file", str(certs.ca), "--client-cert-auth"]
    log = workdir / "etcd.log"
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=out)
    etcd = RunningEtcd(url, process, log, certs, args)
    _wait_until_answering(etcd)
    return etcd


def _wait_until_answering(etcd: RunningEtcd) -> None:
    context = None
    if etcd.certs:
        context = ssl.create_default_context(cafile=str(etcd.certs.ca))
        context.load_cert_chain(etcd.certs.client_cert, etcd.certs.client_key)
    body = json.dumps({"key": "AA=="}).encode()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if etcd.process.poll() is not None:
            raise RuntimeError(f"etcd exited: {etcd.log.read_text()[-2000:]}")
        request = urllib.request.Request(f"{etcd.url}/v3/kv/range", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    etcd.stop()
    raise RuntimeError(f"etcd did not answer within 15 s: {etcd.log.read_text()[-2000:]}")


def make_etcd_certs(directory: Path) -> EtcdCerts:
    """Make a CA, a serving pair for 127.0.0.1 and a client pair, under directory."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "etcd-test-ca")])
    ca = _builder(ca_name, ca_name, ca_key).add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True
    ).sign(ca_key, hashes.SHA256())
    _write(directory / "ca.crt", ca.public_bytes(serialization.Encoding.PEM))
    # etcd 3.4's gateway dials etcd itself with the serving pair: it needs clientAuth too.
    _issue(directory / "server", "etcd", ca, ca_key, [ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH])
    _issue(directory / "client", "dockyard", ca, ca_key, [ExtendedKeyUsageOID.CLIENT_AUTH])
    return EtcdCerts(directory / "ca.crt", directory / "server.crt", directory / "server.key",
                     directory / "client.crt", directory / "client.key")


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
             ) -> x509.CertificateBuilder:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)))


def _issue(stem: Path, name: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
           usages: list[x509.ObjectIdentifier]) -> None:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (_builder(subject, ca.subject, key)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write(stem.with_suffix(".crt"), cert.public_bytes(serialization.Encoding.PEM))
    _write(stem.with_suffix(".key"), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)
