"""Object metadata helpers: timestamps in Kubernetes' RFC 3339 form and kubectl's durations.

Invariants: timestamps are written as UTC with a "Z" suffix and whole seconds
("2024-05-01T12:00:00Z"), as metav1.Time marshals them; parsing accepts fractional seconds
and offsets too. ``human_duration`` matches apimachinery's HumanDuration, so AGE columns read
as kubectl users know them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def format_time(moment: datetime) -> str:
    """Format a datetime as Kubernetes writes metav1.Time ("2024-05-01T12:00:00Z")."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_time() -> str:
    """Return the current time formatted as metav1.Time."""
    return format_time(datetime.now(UTC))


def parse_time(value: Any) -> datetime | None:
    """Parse an RFC 3339 timestamp; return None for absent or unparseable values."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """Format an elapsed time as kubectl does: "45s", "3m2s", "4h", "2d5h", "3y"."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        rest = secs % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: datetime) -> str:
    """Return the kubectl duration from a timestamp to now, or "<unknown>" without one."""
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


def metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """Return an object's metadata dict ({} when absent or malformed)."""
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def labels(obj: dict[str, Any]) -> dict[str, str]:
    """Return an object's labels ({} when absent)."""
    value = metadata(obj).get("labels")
    return value if isinstance(value, dict) else {}


def owner_reference(owner: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """Build the ownerReference a controller puts on what it creates (blocking deletion)."""
    meta = metadata(owner)
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Return the ownerReference with controller: true, or None."""
    for ref in metadata(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def is_controlled_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    """Return True if obj's controller reference points at owner (by uid)."""
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == metadata(owner).get("uid")


def set_default(obj: dict[str, Any], key: str, value: Any) -> Any:
    """Set obj[key] to value when absent or null (JSON null means "not set"); return obj[key]."""
    current = obj.get(key)
    if current is None:
        obj[key] = current = value
    return current
