"""Image references normalise as Docker's do; bad ones fail with a message naming the fault."""

from __future__ import annotations

import pytest

from dockyard.images.reference import ReferenceError, parse_reference

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "normalised", "familiar"),
    [
        ("nginx", "docker.io/library/nginx:latest", "nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25", "nginx:1.25"),
        ("library/nginx", "docker.io/library/nginx:latest", "nginx:latest"),
        ("docker.io/nginx", "docker.io/library/nginx:latest", "nginx:latest"),
        ("index.docker.io/library/x", "docker.io/library/x:latest", "x:latest"),
        ("me/app:v1", "docker.io/me/app:v1", "me/app:v1"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/a/b:2", "localhost:5000/a/b:2", "localhost:5000/a/b:2"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest"),
        ("quay.io/coreos/etcd", "quay.io/coreos/etcd:latest", "quay.io/coreos/etcd:latest"),
        (f"x@{DIGEST}", f"docker.io/library/x@{DIGEST}", f"x@{DIGEST}"),
        (f"x:1@{DIGEST}", f"docker.io/library/x:1@{DIGEST}", f"x:1@{DIGEST}"),
        ("my-app_2.web__x", "docker.io/library/my-app_2.web__x:latest", "my-app_2.web__x:latest"),
    ],
)
def test_normalises_like_docker(text: str, normalised: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == normalised
    assert ref.familiar() == familiar
    assert parse_reference(str(ref)) == ref


def test_parts() -> None:
    ref = parse_reference("host:5000/team/app:v2")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        "host:5000", "team/app", "v2", None,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (" nginx", "spaces"),
        ("Nginx", "lowercase"),
        ("nginx:", "invalid tag"),
        ("nginx:-bad", "invalid tag"),
        ("a//b", "bad path component"),
        ("a/-b", "bad path component"),
        ("x@sha256:abc", "64 lowercase hex"),
        ("x@nodigest", "bad digest"),
        ("host:5000/", "no repository"),
        ("a" * 300, "longer than 255"),
        ("-host.io/x", "bad registry host"),
    ],
)
def test_invalid_references_fail_clearly(text: str, message: str) -> None:
    with pytest.raises(ReferenceError, match=message):
        parse_reference(text)


def test_reference_error_is_a_value_error() -> None:
    assert issubclass(ReferenceError, ValueError)
