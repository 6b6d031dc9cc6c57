"""Errors the API client raises: one class per Kubernetes ``metav1.Status`` reason callers act on.

Invariants: every non-2xx answer becomes an ``ApiError`` (or a subclass chosen by HTTP code and
``reason``) carrying the Status' ``code``, ``reason``, ``message``, ``details`` and
``details.causes``, so a controller can ``except ConflictError`` and retry, and an informer can
``except GoneError`` and re-list. A server that cannot be reached at all is a different failure,
``ServerUnreachableError``, whose message says what to do next.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failure answered by the api server as a ``metav1.Status``."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{message} ({status} {reason})" if reason else f"{message} ({status})")
        self.status = status
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.body = body
        self.retry_after: float | None = None  # seconds, from a 429/5xx Retry-After header

    @property
    def causes(self) -> list[dict[str, Any]]:
        """Return ``details.causes``: one ``{reason, message, field}`` per invalid field."""
        causes = self.details.get("causes")
        return causes if isinstance(causes, list) else []

    @property
    def code(self) -> int:
        """Return the HTTP code (Kubernetes' Status calls it ``code``)."""
        return self.status


class NotFoundError(ApiError):
    """404 NotFound: the object (or the resource) does not exist."""


class ConflictError(ApiError):
    """409 Conflict: the resourceVersion precondition failed; read fresh and retry."""


class AlreadyExistsError(ConflictError):
    """409 AlreadyExists: create of a name that is taken."""


class GoneError(ApiError):
    """410 Gone/Expired: the resourceVersion is too old to watch or continue from; re-list."""


class InvalidError(ApiError):
    """422 Invalid: the object failed validation; ``causes`` name the fields."""


class UnauthorizedError(ApiError):
    """401 Unauthorized: no or a wrong bearer token / client certificate."""


class ForbiddenError(ApiError):
    """403 Forbidden: the caller may not do this."""


class ServerUnreachableError(ConnectionError):
    """No api server answered at the configured address (refused, unresolvable, TLS, lost)."""

    def __init__(self, server: str, cause: str = "", kind: str = "refused") -> None:
        if kind == "tls":
            text = (
                f"TLS handshake with {server} failed: {cause} — check certificate-authority "
                "in your kubeconfig (or insecure-skip-tls-verify for a throwaway test server)"
            )
        elif kind == "lost":
            text = f"connection to {server} lost: {cause} — is the server restarting?"
        else:
            text = f"no server at {server} — start one with `dockyard server`"
            if cause:
                text += f" ({cause})"
        super().__init__(text)
        self.server = server
        self.cause = cause
        self.kind = kind


_BY_CODE: dict[int, type[ApiError]] = {
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
}


def error_from_status(status: int, body: Any, fallback_text: str = "") -> ApiError:
    """Build the ``ApiError`` subclass for an HTTP code and a (possibly non-Status) body."""
    if isinstance(body, dict) and body.get("kind") == "Status":
        code = int(body.get("code") or status)
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or fallback_text or reason or f"HTTP {code}")
        details = body.get("details") if isinstance(body.get("details"), dict) else None
        return _pick(code, reason)(code, reason, message, details, body)
    text = fallback_text.strip() or f"HTTP {status}"
    return _pick(status, "")(status, _default_reason(status), text[:2000], None, None)


def _pick(code: int, reason: str) -> type[ApiError]:
    if reason == "AlreadyExists":
        return AlreadyExistsError
    if reason in ("Expired", "Gone"):
        return GoneError
    return _BY_CODE.get(code, ApiError)


def _default_reason(code: int) -> str:
    return {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        405: "MethodNotAllowed",
        409: "Conflict",
        410: "Expired",
        415: "UnsupportedMediaType",
        422: "Invalid",
        429: "TooManyRequests",
        500: "InternalError",
        503: "ServiceUnavailable",
        504: "Timeout",
    }.get(code, "Unknown")
