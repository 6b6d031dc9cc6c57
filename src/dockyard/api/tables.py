"""Table output (meta.k8s.io/v1 Table) with the columns kube-apiserver's printers produce.

kubectl asks for a Table on `get`; it prints the cells of priority-0 columns, adds priority-1
columns for `-o wide`, and reads ``rows[].object`` (PartialObjectMetadata) for `-A` and
`--show-labels`. Like kube-apiserver, every row carries the wide cells too.

Invariants: each row has exactly one cell per column definition, in order; cell types follow
the column (strings for AGE, "1/1" and the like; integers where Kubernetes prints integers);
timestamps become kubectl durations relative to ``now`` ("5s", "3m2s", "4h", "2d").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dockyard.objects.meta import since
from dockyard.objects.pod import pod_summary
from dockyard.objects.resources import ResourceInfo
from dockyard.objects.selectors import LabelSelector, SelectorError
from dockyard.objects.validation import dict_of

Obj = dict[str, Any]
Cell = str | int | bool

INCLUDE_OBJECT = ("None", "Metadata", "Object")

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


@dataclass(frozen=True)
class Column:
    """One column definition of a Table."""

    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the TableColumnDefinition JSON."""
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


NAME = Column("Name", format="name", description=_NAME_DOC)
AGE = Column("Age", description=_AGE_DOC)


def _wide(name: str, description: str) -> Column:
    return Column(name, description=description, priority=1)


_TEMPLATE_WIDE = [
    _wide("Containers", "Names of each container in the template."),
    _wide("Images", "Images referenced by each container in the template."),
    _wide("Selector", "Label selector for pods."),
]


def table(
    resource: ResourceInfo,
    items: list[Obj],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    now: datetime | None = None,
    continue_token: str | None = None,
) -> dict[str, Any]:
    """Return a meta.k8s.io/v1 Table of the items with the resource's kubectl columns."""
    if include_object not in INCLUDE_OBJECT:
        raise ValueError(
            f"includeObject must be one of {', '.join(INCLUDE_OBJECT)}, not {include_object!r}"
        )
    moment = now or datetime.now(UTC)
    columns, row_of = _PRINTERS.get(resource.kind, (_DEFAULT_COLUMNS, _default_row))
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [c.to_dict() for c in columns],
        "rows": [_row(item, row_of(item, moment), include_object) for item in items],
    }


def _row(item: Obj, cells: list[Cell], include_object: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": cells}
    if include_object == "Object":
        row["object"] = item
    elif include_object == "Metadata":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": dict_of(item.get("metadata")),
        }
    return row


# --- small readers -------------------------------------------------------------------------


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _list(obj: Any, *keys: str) -> list[Any]:
    value = _get(obj, *keys)
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _name(obj: Obj) -> str:
    return str(_get(obj, "metadata", "name") or "")


def _age(obj: Obj, now: datetime) -> str:
    return since(_get(obj, "metadata", "creationTimestamp"), now)


def _format_labels(labels: Any) -> str:
    """Format a label map as kubectl does: sorted "k=v,k2=v2", "<none>" when empty."""
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _selector_string(selector: Any, empty: str) -> str:
    try:
        text = str(LabelSelector.from_dict(selector))
    except SelectorError:
        return "<invalid>"
    return text or empty


def _containers(template_spec: Any) -> tuple[str, str]:
    containers = [c for c in _list(template_spec, "containers") if isinstance(c, dict)]
    names = ",".join(str(c.get("name", "")) for c in containers)
    images = ",".join(str(c.get("image", "")) for c in containers)
    return names, images


# --- pods ----------------------------------------------------------------------------------

_POD_COLUMNS = [
    NAME,
    Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column(
        "Restarts",
        description="The number of times the containers in this pod have been restarted and "
        "when the last container in this pod has restarted.",
    ),
    AGE,
    _wide("IP", "IP address allocated to the pod. Routable at least within the cluster."),
    _wide("Node", "NodeName is a request to schedule this pod onto a specific node."),
    _wide("Nominated Node", "nominatedNodeName is set when this pod preempts other pods."),
    _wide("Readiness Gates", "If specified, all readiness gates will be evaluated."),
]


def _pod_row(pod: Obj, now: datetime) -> list[Cell]:
    summary = pod_summary(pod)
    restarts = str(summary.restarts)
    if summary.restarts and summary.last_restart is not None:
        restarts = f"{summary.restarts} ({since(summary.last_restart.isoformat(), now)} ago)"
    ips = [p.get("ip") for p in _list(pod, "status", "podIPs") if isinstance(p, dict)]
    ip = (ips[0] if ips else None) or _get(pod, "status", "podIP") or "<none>"
    gates = _list(pod, "spec", "readinessGates")
    readiness = "<none>"
    if gates:
        conditions = {
            str(c.get("type")): c.get("status")
            for c in _list(pod, "status", "conditions")
            if isinstance(c, dict)
        }
        true = sum(
            1
            for g in gates
            if isinstance(g, dict) and conditions.get(str(g.get("conditionType"))) == "True"
        )
        readiness = f"{true}/{len(gates)}"
    return [
        _name(pod),
        f"{summary.ready}/{summary.total}",
        summary.reason,
        restarts,
        _age(pod, now),
        str(ip),
        str(_get(pod, "spec", "nodeName") or "<none>"),
        str(_get(pod, "status", "nominatedNodeName") or "<none>"),
        readiness,
    ]


# --- deployments and replicasets -----------------------------------------------------------

_DEPLOYMENT_COLUMNS = [
    NAME,
    Column("Ready", description="Number of the pod with ready state"),
    Column(
        "Up-to-date",
        "integer",
        "Total number of non-terminated pods targeted by this "
        "deployment that have the desired template spec.",
    ),
    Column(
        "Available",
        "integer",
        "Total number of available pods (ready for at least "
        "minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    *_TEMPLATE_WIDE,
]


def _deployment_row(obj: Obj, now: datetime) -> list[Cell]:
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    desired = _get(obj, "spec", "replicas")
    ready = _int(_get(obj, "status", "readyReplicas"))
    return [
        _name(obj),
        f"{ready}/{_int(desired) if desired is not None else 1}",
        _int(_get(obj, "status", "updatedReplicas")),
        _int(_get(obj, "status", "availableReplicas")),
        _age(obj, now),
        names,
        images,
        _selector_string(_get(obj, "spec", "selector"), ""),
    ]


_REPLICASET_COLUMNS = [
    NAME,
    Column("Desired", "integer", "Replicas is the number of desired replicas."),
    Column("Current", "integer", "Replicas is the most recently observed number of replicas."),
    Column("Ready", "integer", "The number of ready replicas for this replica set."),
    AGE,
    *_TEMPLATE_WIDE,
]


def _replicaset_row(obj: Obj, now: datetime) -> list[Cell]:
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    desired = _get(obj, "spec", "replicas")
    return [
        _name(obj),
        _int(desired) if desired is not None else 1,
        _int(_get(obj, "status", "replicas")),
        _int(_get(obj, "status", "readyReplicas")),
        _age(obj, now),
        names,
        images,
        _selector_string(_get(obj, "spec", "selector"), "<none>"),
    ]


# --- nodes ---------------------------------------------------------------------------------

_NODE_COLUMNS = [
    NAME,
    Column("Status", description="The status of the node"),
    Column("Roles", description="The roles of the node"),
    AGE,
    Column("Version", description="Kubelet Version reported by the node."),
    _wide("Internal-IP", "List of addresses reachable to the node."),
    _wide("External-IP", "List of addresses reachable to the node."),
    _wide(
        "OS-Image",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    _wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r'."),
    _wide(
        "Container-Runtime",
        "ContainerRuntime Version reported by the node through runtime "
        "remote API (e.g. containerd://1.4.2).",
    ),
]
_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_row(obj: Obj, now: datetime) -> list[Cell]:
    ready = next(
        (
            c
            for c in _list(obj, "status", "conditions")
            if isinstance(c, dict) and c.get("type") == "Ready"
        ),
        None,
    )
    status = (
        ["Unknown"] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    )
    if _get(obj, "spec", "unschedulable") is True:
        status.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in (dict_of(_get(obj, "metadata", "labels"))).items():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX) :]:
            roles.add(key[len(_ROLE_PREFIX) :])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = dict_of(_get(obj, "status", "nodeInfo"))
    return [
        _name(obj),
        ",".join(status),
        ",".join(sorted(roles)) or "<none>",
        _age(obj, now),
        str(info.get("kubeletVersion") or ""),
        _node_address(obj, "InternalIP"),
        _node_address(obj, "ExternalIP"),
        str(info.get("osImage") or "<unknown>"),
        str(info.get("kernelVersion") or "<unknown>"),
        str(info.get("containerRuntimeVersion") or "<unknown>"),
    ]


def _node_address(obj: Obj, kind: str) -> str:
    for address in _list(obj, "status", "addresses"):
        if isinstance(address, dict) and address.get("type") == kind:
            return str(address.get("address", ""))
    return "<none>"


# --- services and endpoints ----------------------------------------------------------------

_SERVICE_COLUMNS = [
    NAME,
    Column("Type", description="type determines how the Service is exposed."),
    Column("Cluster-IP", description="clusterIP is the IP address of the service."),
    Column(
        "External-IP",
        description="externalIPs is a list of IP addresses for which nodes in "
        "the cluster will also accept traffic for this service.",
    ),
    Column("Port(s)", description="The list of ports that are exposed by this service."),
    AGE,
    _wide(
        "Selector",
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
]
_LB_WIDTH = 16


def _service_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = dict_of(_get(obj, "spec"))
    cluster_ips = _list(spec, "clusterIPs")
    cluster_ip = (cluster_ips[0] if cluster_ips else None) or spec.get("clusterIP") or "<none>"
    ports = []
    for port in _list(spec, "ports"):
        if isinstance(port, dict):
            protocol = port.get("protocol", "TCP")
            node_port = f":{port['nodePort']}" if port.get("nodePort") else ""
            ports.append(f"{port.get('port')}{node_port}/{protocol}")
    return [
        _name(obj),
        str(spec.get("type") or ""),
        str(cluster_ip),
        _external_ip(obj),
        ",".join(ports) or "<none>",
        _age(obj, now),
        _format_labels(spec.get("selector")),
    ]


def _external_ip(obj: Obj) -> str:
    spec = dict_of(_get(obj, "spec"))
    external = [str(ip) for ip in _list(spec, "externalIPs")]
    kind = spec.get("type")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "ExternalName":
        return str(spec.get("externalName") or "")
    if kind == "LoadBalancer":
        ingress = {
            str(i.get("ip") or i.get("hostname"))
            for i in _list(obj, "status", "loadBalancer", "ingress")
            if isinstance(i, dict) and (i.get("ip") or i.get("hostname"))
        }
        balancer = ",".join(sorted(ingress))
        if external:
            return ",".join([*(balancer.split(",") if balancer else []), *external])
        if len(balancer) > _LB_WIDTH:
            balancer = balancer[: _LB_WIDTH - 3] + "..."
        return balancer or "<pending>"
    return "<unknown>"


_ENDPOINTS_COLUMNS = [
    NAME,
    Column("Endpoints", description="The set of all endpoints is the union of all subsets."),
    AGE,
]


def _endpoints_row(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), _format_endpoints(obj), _age(obj, now)]


def _format_endpoints(obj: Obj) -> str:
    """List up to 3 "ip:port" endpoints, then " + N more...", as kubectl does."""
    subsets = [s for s in _list(obj, "subsets") if isinstance(s, dict)]
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [a for a in _list(subset, "addresses") if isinstance(a, dict)]
        ports: list[Obj | None] = [p for p in _list(subset, "ports") if isinstance(p, dict)]
        ports = ports or [None]  # headless services list bare addresses
        for port in ports:
            for address in addresses:
                ip = str(address.get("ip", ""))
                if port is not None:
                    ip = f"[{ip}]:{port.get('port')}" if ":" in ip else f"{ip}:{port.get('port')}"
                if len(shown) < 3:
                    shown.append(ip)
                count += 1
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if count > 3 else text


# --- events --------------------------------------------------------------------------------

_EVENT_COLUMNS = [
    Column(
        "Last Seen",
        description="The time at which the most recent occurrence of this event was recorded.",
    ),
    Column(
        "Type",
        description="Type of this event (Normal, Warning), new types could be added in the future",
    ),
    Column(
        "Reason",
        description="This should be a short, machine understandable string that "
        "gives the reason for the transition into the object's current status.",
    ),
    Column("Object", description="The object that this event is about."),
    _wide(
        "Subobject",
        "If referring to a piece of an object instead of an entire object, this "
        "string should contain a valid JSON/Go field access statement.",
    ),
    _wide("Source", "The component reporting this event."),
    Column("Message", description="A human-readable description of the status of this operation."),
    _wide("First Seen", "The time at which the event was first recorded."),
    _wide("Count", "The number of times this event has occurred."),
    Column("Name", format="name", description=_NAME_DOC, priority=1),
]


def _event_row(obj: Obj, now: datetime) -> list[Cell]:
    first = obj.get("firstTimestamp") or obj.get("eventTime")
    first_seen = since(first, now)
    last_seen = since(obj["lastTimestamp"], now) if obj.get("lastTimestamp") else first_seen
    count = _int(obj.get("count"))
    series = obj.get("series")
    if isinstance(series, dict):
        last_seen = since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events carry no count in the new API
    involved = dict_of(obj.get("involvedObject"))
    kind = str(involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = dict_of(obj.get("source"))
    component = (
        source.get("component")
        or obj.get("reportingComponent")
        or obj.get("reportingController")
        or ""
    )
    host = source.get("host") or obj.get("reportingInstance") or ""
    return [
        last_seen,
        str(obj.get("type") or ""),
        str(obj.get("reason") or ""),
        target,
        str(involved.get("fieldPath") or ""),
        f"{component}, {host}" if host else str(component),
        str(obj.get("message") or "").strip(),
        first_seen,
        count,
        _name(obj),
    ]


# --- simple kinds --------------------------------------------------------------------------

_NAMESPACE_COLUMNS = [NAME, Column("Status", description="The status of the namespace"), AGE]
_CONFIGMAP_COLUMNS = [
    NAME,
    Column("Data", description="Data contains the configuration data."),
    AGE,
]
_SECRET_COLUMNS = [
    NAME,
    Column("Type", description="Used to facilitate programmatic handling of secret data."),
    Column("Data", description="Data contains the secret data."),
    AGE,
]
_LEASE_COLUMNS = [
    NAME,
    Column(
        "Holder",
        description="holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
]
_PRIORITY_COLUMNS = [
    NAME,
    Column("Value", "integer", "value represents the integer value of this priority class."),
    Column(
        "Global-Default",
        "boolean",
        "globalDefault specifies whether this PriorityClass "
        "should be considered as the default priority for pods that do not have any "
        "priority class.",
    ),
    AGE,
    Column(
        "PreemptionPolicy",
        description="preemptionPolicy is the Policy for preempting pods with lower priority.",
    ),
]
_PDB_COLUMNS = [
    NAME,
    Column("Min Available", description="The minimum number of pods that must be available."),
    Column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
    Column(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
]
_HPA_COLUMNS = [
    NAME,
    Column("Reference", description="reference to scaled resource"),
    Column(
        "Targets",
        description="metrics contains the specifications for which to use to "
        "calculate the desired replica count",
    ),
    Column("MinPods", description="minReplicas is the lower limit for the number of replicas"),
    Column("MaxPods", description="maxReplicas is the upper limit for the number of replicas"),
    Column(
        "Replicas",
        description="currentReplicas is current number of replicas of pods "
        "managed by this autoscaler",
    ),
    AGE,
]
_DEFAULT_COLUMNS = [NAME, AGE]


def _namespace_row(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), str(_get(obj, "status", "phase") or ""), _age(obj, now)]


def _configmap_row(obj: Obj, now: datetime) -> list[Cell]:
    count = len(dict_of(obj.get("data"))) + len(dict_of(obj.get("binaryData")))
    return [_name(obj), count, _age(obj, now)]


def _secret_row(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), str(obj.get("type") or ""), len(dict_of(obj.get("data"))), _age(obj, now)]


def _lease_row(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), str(_get(obj, "spec", "holderIdentity") or ""), _age(obj, now)]


def _priority_row(obj: Obj, now: datetime) -> list[Cell]:
    policy = obj.get("preemptionPolicy")
    return [
        _name(obj),
        _int(obj.get("value")),
        obj.get("globalDefault") is True,
        _age(obj, now),
        policy if isinstance(policy, str) else "",
    ]


def _pdb_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = dict_of(obj.get("spec"))
    low, high = spec.get("minAvailable"), spec.get("maxUnavailable")
    return [
        _name(obj),
        "N/A" if low is None else str(low),
        "N/A" if high is None else str(high),
        _int(_get(obj, "status", "disruptionsAllowed")),
        _age(obj, now),
    ]


def _hpa_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = dict_of(obj.get("spec"))
    ref = dict_of(spec.get("scaleTargetRef"))
    low = spec.get("minReplicas")
    return [
        _name(obj),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        format_hpa_metrics(_list(spec, "metrics"), _list(obj, "status", "currentMetrics")),
        "<unset>" if low is None else str(low),
        _int(spec.get("maxReplicas")),
        _int(_get(obj, "status", "currentReplicas")),
        _age(obj, now),
    ]


_HPA_SOURCES = {
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
}


def format_hpa_metrics(specs: list[Any], statuses: list[Any]) -> str:
    """Format HPA targets as kubectl does: "45%/80%", "<unknown>/500m", "+ 1 more..."."""
    if not specs:
        return "<none>"
    shown = [
        _hpa_metric(spec, statuses[i] if i < len(statuses) else None)
        for i, spec in enumerate(specs)
    ]
    if len(shown) > 2:
        return f"{', '.join(shown[:2])} + {len(shown) - 2} more..."
    return ", ".join(shown)


def _hpa_metric(spec: Any, status: Any) -> str:
    kind = _get(spec, "type")
    key = _HPA_SOURCES.get(str(kind))
    if key is None:
        return "<unknown type>"
    target = dict_of(_get(spec, key, "target"))
    current = dict_of(_get(status, key, "current"))
    # Current kube-apiserver printers name resource metrics: "cpu: 45%/80%".
    name = f"{_get(spec, key, 'name')}: " if kind in ("Resource", "ContainerResource") else ""
    if target.get("averageValue") is not None:
        suffix = " (avg)" if kind in ("Object", "External") else ""
        average = current.get("averageValue") or "<unknown>"
        return f"{name}{average}/{target['averageValue']}{suffix}"
    if kind in ("Resource", "ContainerResource"):
        now_pct = current.get("averageUtilization")
        want = target.get("averageUtilization")
        left = "<unknown>" if now_pct is None else f"{now_pct}%"
        return f"{name}{left}/{'<auto>' if want is None else f'{want}%'}"
    return f"{current.get('value') or '<unknown>'}/{target.get('value')}"


def _default_row(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), _age(obj, now)]


RowFunction = Callable[[Obj, datetime], list[Cell]]

_PRINTERS: dict[str, tuple[list[Column], RowFunction]] = {
    "Pod": (_POD_COLUMNS, _pod_row),
    "Deployment": (_DEPLOYMENT_COLUMNS, _deployment_row),
    "ReplicaSet": (_REPLICASET_COLUMNS, _replicaset_row),
    "Node": (_NODE_COLUMNS, _node_row),
    "Service": (_SERVICE_COLUMNS, _service_row),
    "Endpoints": (_ENDPOINTS_COLUMNS, _endpoints_row),
    "Event": (_EVENT_COLUMNS, _event_row),
    "Namespace": (_NAMESPACE_COLUMNS, _namespace_row),
    "ConfigMap": (_CONFIGMAP_COLUMNS, _configmap_row),
    "Secret": (_SECRET_COLUMNS, _secret_row),
    "Lease": (_LEASE_COLUMNS, _lease_row),
    "PriorityClass": (_PRIORITY_COLUMNS, _priority_row),
    "PodDisruptionBudget": (_PDB_COLUMNS, _pdb_row),
    "HorizontalPodAutoscaler": (_HPA_COLUMNS, _hpa_row),
}
