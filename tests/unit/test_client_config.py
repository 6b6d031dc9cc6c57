"""Kubeconfig loading: file choice, KUBECONFIG merging, relative paths, credentials, errors."""

from __future__ import annotations

import base64
import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.client.config import ClientConfig, KubeconfigError, load_kubeconfig

pytestmark = pytest.mark.unit


def make_cert(cn: str = "test-ca") -> tuple[bytes, bytes]:
    """Return (certificate PEM, key PEM) of a fresh self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def kubeconfig(
    clusters: dict[str, dict[str, Any]],
    users: dict[str, dict[str, Any]],
    contexts: dict[str, dict[str, Any]],
    current: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current:
        doc["current-context"] = current
    return doc


def write(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture(autouse=True)
def no_env_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_loads_server_token_ca_data_and_namespace(tmp_path: Path) -> None:
    ca, _ = make_cert()
    path = write(tmp_path / "config", kubeconfig(
        {"c": {"server": "https://127.0.0.1:6443",
               "certificate-authority-data": base64.b64encode(ca).decode()}},
        {"u": {"token": "secret-token"}},
        {"ctx": {"cluster": "c", "user": "u", "namespace": "team"}},
        current="ctx",
    ))
    cfg = load_kubeconfig(path)
    assert cfg.server == "https://127.0.0.1:6443"
    assert cfg.token == "secret-token"
    assert cfg.ca_data == ca
    assert cfg.namespace == "team"
    assert not cfg.insecure
    ctx = cfg.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_namespace_defaults_to_default(tmp_path: Path) -> None:
    path = write(tmp_path / "config", kubeconfig(
        {"c": {"server": "https://h:1"}}, {"u": {}}, {"ctx": {"cluster": "c", "user": "u"}},
        current="ctx"))
    assert load_kubeconfig(path).namespace == "default"


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    ca, key = make_cert()
    (tmp_path / "sub" / "ca.crt").write_bytes(ca)
    (tmp_path / "sub" / "token").write_text("from-file\n")
    (tmp_path / "sub" / "client.crt").write_bytes(ca)
    (tmp_path / "sub" / "client.key").write_bytes(key)
    path = write(tmp_path / "sub" / "config", kubeconfig(
        {"c": {"server": "https://h:1", "certificate-authority": "ca.crt"}},
        {"u": {"tokenFile": "token", "client-certificate": "client.crt",
               "client-key": "client.key"}},
        {"ctx": {"cluster": "c", "user": "u"}}, current="ctx"))
    cfg = load_kubeconfig(path)
    assert cfg.ca_file == str(tmp_path / "sub" / "ca.crt")
    assert cfg.token == "from-file"
    assert cfg.client_cert == str(tmp_path / "sub" / "client.crt")
    assert cfg.ssl_context() is not None  # loads the CA file and the client key pair


def test_client_certificate_data_loads_into_ssl_context(tmp_path: Path) -> None:
    cert, key = make_cert("client")
    path = write(tmp_path / "config", kubeconfig(
        {"c": {"server": "https://h:1", "insecure-skip-tls-verify": True}},
        {"u": {"client-certificate-data": base64.b64encode(cert).decode(),
               "client-key-data": base64.b64encode(key).decode()}},
        {"ctx": {"cluster": "c", "user": "u"}}, current="ctx"))
    cfg = load_kubeconfig(path)
    assert cfg.insecure and cfg.client_cert_data == cert and cfg.client_key_data == key
    ctx = cfg.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_NONE


def test_token_wins_over_token_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("file")
    path = write(tmp_path / "config", kubeconfig(
        {"c": {"server": "https://h:1"}}, {"u": {"token": "inline", "tokenFile": "token"}},
        {"ctx": {"cluster": "c", "user": "u"}}, current="ctx"))
    assert load_kubeconfig(path).token == "inline"


def test_kubeconfig_env_merges_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write(tmp_path / "a", kubeconfig(
        {"shared": {"server": "https://first:1"}}, {"u1": {"token": "t1"}},
        {"ctx": {"cluster": "shared", "user": "u2"}}, current="ctx"))
    second = write(tmp_path / "b", kubeconfig(
        {"shared": {"server": "https://second:2"}, "only-b": {"server": "https://b:3"}},
        {"u2": {"token": "t2"}},
        {"ctx": {"cluster": "only-b", "user": "u1"}, "other": {"cluster": "only-b",
                                                              "user": "u1"}},
        current="other"))
    missing = str(tmp_path / "does-not-exist")
    monkeypatch.setenv("KUBECONFIG", ":".join([missing, first, second]))
    cfg = load_kubeconfig()
    # current-context and "ctx" come from the first file; its user u2 only exists in the second.
    assert cfg.server == "https://first:1"
    assert cfg.token == "t2"
    other = load_kubeconfig(context="other")
    assert other.server == "https://b:3" and other.token == "t1"


def test_default_path_is_home_kube_config(tmp_path: Path) -> None:
    home = tmp_path / "home" / ".kube"
    home.mkdir(parents=True)
    write(home / "config", kubeconfig({"c": {"server": "h:6443"}}, {"u": {}},
                                      {"x": {"cluster": "c", "user": "u"}}, current="x"))
    assert load_kubeconfig().server == "https://h:6443"


@pytest.mark.parametrize(
    ("doc", "context", "expected"),
    [
        (kubeconfig({"c": {"server": "https://h"}}, {}, {"x": {"cluster": "c"}}), None,
         "no current-context"),
        (kubeconfig({"c": {"server": "https://h"}}, {}, {"x": {"cluster": "c"}}, "x"), "nope",
         "context 'nope' not found"),
        (kubeconfig({}, {}, {"x": {"cluster": "gone"}}, "x"), None,
         "cluster 'gone', which is not defined"),
        (kubeconfig({"c": {"server": "https://h"}}, {}, {"x": {"cluster": "c", "user": "u"}},
                    "x"), None, "user 'u', which is not defined"),
        (kubeconfig({"c": {}}, {}, {"x": {"cluster": "c"}}, "x"), None, "has no server"),
        (kubeconfig({"c": {"server": "https://h", "certificate-authority": "nofile"}}, {},
                    {"x": {"cluster": "c"}}, "x"), None, "certificate-authority"),
        (kubeconfig({"c": {"server": "https://h", "certificate-authority-data": "!!"}}, {},
                    {"x": {"cluster": "c"}}, "x"), None, "not valid base64"),
        (kubeconfig({"c": {"server": "https://h"}}, {"u": {"client-certificate-data": "QQ=="}},
                    {"x": {"cluster": "c", "user": "u"}}, "x"), None, "without a key"),
        (kubeconfig({"c": {"server": "https://h"}}, {"u": {"auth-provider": {"name": "gcp"}}},
                    {"x": {"cluster": "c", "user": "u"}}, "x"), None, "auth-provider"),
        (kubeconfig({"c": {"server": "https://h"}}, {"u": {"exec": {"args": ["x"]}}},
                    {"x": {"cluster": "c", "user": "u"}}, "x"), None, "exec section without"),
    ],
)
def test_errors_name_file_and_problem(
    tmp_path: Path, doc: dict[str, Any], context: str | None, expected: str
) -> None:
    path = write(tmp_path / "config", doc)
    with pytest.raises(KubeconfigError) as e:
        load_kubeconfig(path, context)
    assert expected in str(e.value)
    assert str(tmp_path / "config") in str(e.value)


def test_missing_files_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KubeconfigError, match="does not exist"):
        load_kubeconfig(str(tmp_path / "nope"))
    with pytest.raises(KubeconfigError, match="dockyard server"):
        load_kubeconfig()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "x"))
    with pytest.raises(KubeconfigError, match="none of the KUBECONFIG files exist"):
        load_kubeconfig()


def test_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("- just\n- a list\n")
    with pytest.raises(KubeconfigError, match="not a kubeconfig"):
        load_kubeconfig(str(tmp_path / "config"))


def test_plain_http_server_has_no_ssl_context() -> None:
    assert ClientConfig(server="http://127.0.0.1:8080").ssl_context() is None
