"""Why a node was rejected: named reason constants and the kube-scheduler message built from them.

Invariants: every rejection reason a plugin reports is one of the constants below (or one of
the two templates filled by a function here), worded exactly as kube-scheduler words it, so
users and tools that grep for Kubernetes' messages keep working. ``fit_error_message`` builds
"0/N nodes are available: <count> <reason>, ..." with one entry per distinct reason, counts
grouped and the entries sorted as strings (kube-scheduler's FitError.Error sorts the
"<count> <reason>" strings, so "1 node(s) ..." sorts before "2 Insufficient cpu").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

NO_NODE_AVAILABLE = "0/{total} nodes are available"

TOO_MANY_PODS = "Too many pods"
NODE_NAME_MISMATCH = "node(s) didn't match the requested node name"
NODE_SELECTOR_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
NODE_UNSCHEDULABLE = "node(s) were unschedulable"
NODE_PORTS_CONFLICT = "node(s) didn't have free ports for the requested pod ports"
POD_AFFINITY_MISMATCH = "node(s) didn't match pod affinity rules"
POD_ANTI_AFFINITY_MISMATCH = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_MISMATCH = "node(s) didn't satisfy existing pods anti-affinity rules"
SPREAD_CONSTRAINTS_MISMATCH = "node(s) didn't match pod topology spread constraints"
SPREAD_MISSING_LABEL = (
    "node(s) didn't match pod topology spread constraints (missing required label)"
)
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_PREEMPTION_VICTIMS = "No preemption victims found for incoming pod"


def insufficient(resource: str) -> str:
    """Return the reason for a resource the node lacks ("Insufficient cpu")."""
    return f"Insufficient {resource}"


def untolerated_taint(key: str, value: str) -> str:
    """Return the reason for a taint the pod does not tolerate, as kube-scheduler prints it."""
    return f"node(s) had untolerated taint {{{key}: {value}}}"


def fit_error_message(total: int, reasons: Iterable[str], pre_filter: str = "") -> str:
    """Return "0/N nodes are available: ..." from one reason per rejection (repeats counted)."""
    message = NO_NODE_AVAILABLE.format(total=total) + ":"
    if pre_filter:
        message += f" {pre_filter}."
    counts = Counter(reasons)
    entries = sorted(f"{count} {reason}" for reason, count in counts.items())
    if entries:
        message += " " + ", ".join(entries) + "."
    return message
