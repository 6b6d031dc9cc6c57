"""Image references: parse and normalise names the way Docker does.

`nginx` means `docker.io/library/nginx:latest`; `library/x`, `host:port/x:tag` and
`x@sha256:<hex>` follow Docker's grammar (distribution/reference). Invariants: a parsed
Reference always has a registry and a repository; it has a tag, a digest or both (a bare
name gets the tag `latest`); `str(ref)` is the fully qualified, normalised form that the
image store uses as its key, and `familiar()` is the short form shown to users.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
LEGACY_REGISTRY = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_SHA256_HEX = re.compile(r"[a-f0-9]{64}")


class ReferenceError(ValueError):
    """An image reference that does not follow Docker's grammar."""


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: registry/repository[:tag][@digest]."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Return registry/repository without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar(self) -> str:
        """Return the short name users type: `nginx:latest`, `me/app:1`, `host:5000/x:2`."""
        name = self.repository
        if self.registry != DEFAULT_REGISTRY:
            name = f"{self.registry}/{name}"
        elif name.startswith(OFFICIAL_NAMESPACE + "/") and name.count("/") == 1:
            name = name[len(OFFICIAL_NAMESPACE) + 1 :]
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    def with_tag(self, tag: str) -> Reference:
        """Return this reference with another tag and no digest."""
        if not _TAG.fullmatch(tag):
            raise ReferenceError(f"invalid tag {tag!r}: use letters, digits, '_', '.', '-'")
        return Reference(self.registry, self.repository, tag, None)


def parse_reference(text: str) -> Reference:
    """Parse `text` into a normalised Reference, raising ReferenceError if invalid."""
    if not text or text != text.strip():
        raise ReferenceError(f"invalid reference {text!r}: empty or surrounded by spaces")
    remainder, digest = _split_digest(text)
    remainder, tag = _split_tag(remainder)
    registry, repository = _split_registry(remainder, original=text)
    _check_repository(repository, original=text)
    if len(f"{registry}/{repository}") > MAX_NAME_LENGTH:
        raise ReferenceError(f"invalid reference {text!r}: name longer than 255 characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)


def _split_digest(text: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    remainder, digest = text.split("@", 1)
    if not _DIGEST.fullmatch(digest):
        raise ReferenceError(f"invalid reference {text!r}: bad digest {digest!r}")
    algorithm, hex_part = digest.split(":", 1)
    if algorithm == "sha256" and not _SHA256_HEX.fullmatch(hex_part):
        raise ReferenceError(
            f"invalid reference {text!r}: a sha256 digest has 64 lowercase hex digits"
        )
    return remainder, digest


def _split_tag(text: str) -> tuple[str, str | None]:
    # A ':' after the last '/' starts a tag; one before it belongs to host:port.
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon <= slash:
        return text, None
    tag = text[colon + 1 :]
    if not _TAG.fullmatch(tag):
        raise ReferenceError(
            f"invalid tag {tag!r} in {text!r}: use up to 128 letters, digits, '_', '.', '-'"
        )
    return text[:colon], tag


def _split_registry(text: str, *, original: str) -> tuple[str, str]:
    first, sep, rest = text.partition("/")
    # Docker's rule: the first component is a registry only if it looks like a host.
    is_host = sep and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    )
    if not is_host:
        registry, repository = DEFAULT_REGISTRY, text
    else:
        if not _DOMAIN.fullmatch(first):
            raise ReferenceError(f"invalid reference {original!r}: bad registry host {first!r}")
        registry, repository = first, rest
    if registry == LEGACY_REGISTRY:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"{OFFICIAL_NAMESPACE}/{repository}"
    return registry, repository


def _check_repository(repository: str, *, original: str) -> None:
    if not repository:
        raise ReferenceError(f"invalid reference {original!r}: no repository name")
    if repository.lower() != repository:
        raise ReferenceError(
            f"invalid reference {original!r}: repository name must be lowercase"
        )
    for component in repository.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise ReferenceError(
                f"invalid reference {original!r}: bad path component {component!r} "
                "(use lowercase letters, digits and single '.', '_', '__' or '-' between them)"
            )


def is_sha256_digest(text: str) -> bool:
    """Return True if `text` is `sha256:` followed by 64 lowercase hex digits."""
    return text.startswith("sha256:") and bool(_SHA256_HEX.fullmatch(text[7:]))
