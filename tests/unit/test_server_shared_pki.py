"""--shared-dir: a second api server takes the shared CA and issues its own serving certificate."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from dockyard.server import ServerOptions, ensure_identity, ensure_shared_pki

pytestmark = pytest.mark.unit


def test_without_shared_dir_everything_is_under_the_data_dir(tmp_path: Path) -> None:
    pki, tokens, admin = ensure_identity(ServerOptions(tmp_path / "a"))
    assert pki == (tmp_path / "a" / "pki").resolve()
    assert tokens.path == (tmp_path / "a" / "tokens.json").resolve()
    assert tokens.authenticate(admin) is not None


def test_a_second_server_shares_the_ca_and_tokens(tmp_path: Path) -> None:
    _, _, admin_a = ensure_identity(ServerOptions(tmp_path / "a"))
    pki_b, tokens_b, admin_b = ensure_identity(
        ServerOptions(tmp_path / "b", shared_dir=tmp_path / "a"))
    assert admin_b == admin_a and tokens_b.authenticate(admin_a) is not None
    ca_a = (tmp_path / "a" / "pki" / "ca.crt").read_bytes()
    assert (pki_b / "ca.crt").read_bytes() == ca_a
    assert (pki_b / "ca.key").read_bytes() == (tmp_path / "a" / "pki" / "ca.key").read_bytes()
    assert (pki_b / "ca.key").stat().st_mode & 0o077 == 0  # the CA key stays private
    serving = x509.load_pem_x509_certificate((pki_b / "server.crt").read_bytes())
    assert serving.issuer == x509.load_pem_x509_certificate(ca_a).subject
    assert not (tmp_path / "b" / "tokens.json").exists()


def test_an_empty_shared_dir_gets_the_new_clusters_ca(tmp_path: Path) -> None:
    pki = ensure_shared_pki(tmp_path / "data", tmp_path / "shared", ["127.0.0.1"])
    assert (tmp_path / "shared" / "pki" / "ca.crt").read_bytes() == (pki / "ca.crt").read_bytes()


def test_a_data_dir_with_another_ca_is_refused(tmp_path: Path) -> None:
    ensure_shared_pki(tmp_path / "b", tmp_path / "b", ["127.0.0.1"])  # b made its own CA
    ensure_shared_pki(tmp_path / "a", tmp_path / "a", ["127.0.0.1"])
    before = (tmp_path / "b" / "pki" / "ca.crt").read_bytes()
    with pytest.raises(ValueError, match="is another CA than"):
        ensure_shared_pki(tmp_path / "b", tmp_path / "a", ["127.0.0.1"])
    assert (tmp_path / "b" / "pki" / "ca.crt").read_bytes() == before  # nothing replaced
