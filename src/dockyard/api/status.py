"""Kubernetes ``metav1.Status`` errors: every failure the api server answers is one of these.

Handlers raise ``StatusError``; the error middleware turns it into the JSON Status with the
HTTP code, ``reason`` and ``details`` Kubernetes clients (kubectl, client-go, the Python client)
act on: a 404 NotFound makes ``kubectl apply`` create, a 409 Conflict makes controllers retry.
"""

from __future__ import annotations

from typing import Any


class StatusError(Exception):
    """An api failure with its HTTP code, Kubernetes reason and optional details."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def to_status(self) -> dict[str, Any]:
        """Return the metav1.Status object for this error."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def _details(kind: str, name: str, group: str = "") -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return details


def not_found(plural: str, name: str, group: str = "") -> StatusError:
    """Return the 404 for a missing object ("pods \"x\" not found")."""
    resource = f"{plural}.{group}" if group else plural
    return StatusError(
        404, "NotFound", f'{resource} "{name}" not found', details=_details(plural, name, group)
    )


def already_exists(plural: str, name: str, group: str = "") -> StatusError:
    """Return the 409 for a create whose name is taken."""
    resource = f"{plural}.{group}" if group else plural
    return StatusError(
        409,
        "AlreadyExists",
        f'{resource} "{name}" already exists',
        details=_details(plural, name, group),
    )


def conflict(plural: str, name: str, group: str = "", why: str = "") -> StatusError:
    """Return the 409 for a stale resourceVersion."""
    resource = f"{plural}.{group}" if group else plural
    why = why or (
        "the object has been modified; please apply your changes to the latest version and "
        "try again"
    )
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource} "{name}": {why}',
        details=_details(plural, name, group),
    )


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> StatusError:
    """Return the 422 naming every bad field, as kube-apiserver words it."""
    summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    if len(causes) > 1:
        summary = f"[{summary}]"
    details = _details(kind, name, group)
    details["causes"] = causes
    return StatusError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details=details)


def bad_request(message: str) -> StatusError:
    """Return a 400 BadRequest with a message a person can act on."""
    return StatusError(400, "BadRequest", message)


def method_not_allowed(message: str) -> StatusError:
    """Return a 405 for a verb the resource does not support."""
    return StatusError(405, "MethodNotAllowed", message)


def gone(message: str) -> StatusError:
    """Return the 410 Expired for a too-old resourceVersion."""
    return StatusError(410, "Expired", message)


def forbidden(user: str, verb: str, resource: str, namespace: str | None, why: str) -> StatusError:
    """Return the 403 in kube-apiserver's words."""
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return StatusError(
        403,
        "Forbidden",
        f'{resource} is forbidden: User "{user}" cannot {verb} resource "{resource}"{scope}: {why}',
    )


def unauthorized() -> StatusError:
    """Return the 401 for a missing or unknown bearer token."""
    return StatusError(401, "Unauthorized", "Unauthorized")


def too_large(what: str, limit: int) -> StatusError:
    """Return the 413 for an oversized body or object."""
    return StatusError(
        413, "RequestEntityTooLarge", f"{what} is larger than the limit of {limit} bytes"
    )
