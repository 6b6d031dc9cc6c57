"""Bearer tokens: made, persisted, found by another TokenFile, unknown ones refused cheaply."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.api.tokens import TokenFile

pytestmark = pytest.mark.unit


def test_a_token_made_elsewhere_is_accepted_without_a_restart(tmp_path: Path) -> None:
    server, other = TokenFile(tmp_path), TokenFile(tmp_path)
    token = other.create("node", node="n1")
    user = server.authenticate(token)
    assert user is not None and user.name == "system:node:n1" and user.node == "n1"


def test_an_unknown_token_rereads_the_file_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = TokenFile(tmp_path)
    tokens.create("admin")
    tokens.reload()  # take in our own write
    reads: list[Path] = []
    original = Path.read_text

    def counting_read(self: Path, *args: object, **kwargs: object) -> str:
        reads.append(self)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counting_read)
    for _ in range(5):
        assert tokens.authenticate("dya_not-a-token") is None
    assert reads == []
    fresh = TokenFile(tmp_path).create("join")
    before = len(reads)
    assert tokens.authenticate(fresh) is not None  # the file changed: read once more
    assert tokens.authenticate("dya_still-not-a-token") is None
    assert len(reads) - before == 1
