"""DefaultTolerationSeconds admission through the api storage over a real SQLite file."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.api.admission import (
    DefaultTolerationSeconds,
    configure_tolerations,
    toleration_seconds_of,
)
from dockyard.api.storage import ResourceStorage
from dockyard.objects.pod import NOT_READY_TAINT, UNREACHABLE_TAINT
from dockyard.objects.resources import ResourceInfo, lookup
from dockyard.store.sqlite import SQLiteStore

pytestmark = pytest.mark.unit
Obj = dict[str, Any]


def info(group: str, version: str, plural: str) -> ResourceInfo:
    found = lookup(group, version, plural)
    assert found is not None
    return found


PODS = info("", "v1", "pods")
DEPLOYMENTS = info("apps", "v1", "deployments")
NAMESPACES = info("", "v1", "namespaces")


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[ResourceStorage]:
    store = await SQLiteStore.open(tmp_path / "state.db")
    storage = ResourceStorage(store)
    await storage.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": "default"}})
    yield storage
    await store.close()


def pod(name: str, tolerations: list[Obj] | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def default(key: str, seconds: int) -> Obj:
    return {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}


async def test_without_flags_pods_get_kubernetes_300_seconds(storage: ResourceStorage) -> None:
    made = await storage.create(PODS, "default", pod("p"))
    assert made["spec"]["tolerations"] == [default(NOT_READY_TAINT, 300),
                                           default(UNREACHABLE_TAINT, 300)]


async def test_pods_get_the_servers_seconds(storage: ResourceStorage) -> None:
    configure_tolerations(storage, DefaultTolerationSeconds(not_ready=7, unreachable=0))
    own = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    made = await storage.create(PODS, "default", pod("p", [own]))
    # the pod's own tolerations first, the defaults appended, as Kubernetes' plugin does
    assert made["spec"]["tolerations"] == [own, default(NOT_READY_TAINT, 7),
                                           default(UNREACHABLE_TAINT, 0)]
    stored = await storage.get(PODS, "default", "p")
    assert stored["spec"]["tolerations"] == made["spec"]["tolerations"]


@pytest.mark.parametrize(("own", "added"), [
    # its own unreachable toleration is kept as written; only not-ready is added
    ([default(UNREACHABLE_TAINT, 60)], [NOT_READY_TAINT]),
    # forever (no tolerationSeconds) stays forever
    ([{"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute"}],
     [UNREACHABLE_TAINT]),
    # an empty effect matches every effect, NoExecute included
    ([{"key": UNREACHABLE_TAINT, "operator": "Exists"}], [NOT_READY_TAINT]),
    # an empty key with Exists tolerates every taint: nothing to add
    ([{"operator": "Exists"}], []),
    # a NoSchedule toleration does not cover NoExecute: both added
    ([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
     [NOT_READY_TAINT, UNREACHABLE_TAINT]),
])
async def test_a_pod_that_already_tolerates_keeps_its_own(
        storage: ResourceStorage, own: list[Obj], added: list[str]) -> None:
    configure_tolerations(storage, DefaultTolerationSeconds(5, 5))
    made = await storage.create(PODS, "default", pod("p", copy.deepcopy(own)))
    assert made["spec"]["tolerations"] == [*own, *(default(key, 5) for key in added)]


async def test_an_update_adds_nothing_to_what_create_gave(storage: ResourceStorage) -> None:
    configure_tolerations(storage, DefaultTolerationSeconds(7, 0))
    made = await storage.create(PODS, "default", pod("p"))
    configure_tolerations(storage, DefaultTolerationSeconds(100, 100))  # flags changed since
    changed = copy.deepcopy(made)
    changed["spec"]["containers"][0]["image"] = "busybox:1.36"
    updated = await storage.update(PODS, "default", "p", lambda _current: changed)
    assert updated["spec"]["containers"][0]["image"] == "busybox:1.36"
    assert updated["spec"]["tolerations"] == [default(NOT_READY_TAINT, 7),
                                              default(UNREACHABLE_TAINT, 0)]


async def test_an_update_that_drops_them_gets_them_back(storage: ResourceStorage) -> None:
    # Kubernetes' plugin runs on update too, so a replace from the original manifest (which
    # lacks the server's tolerations) is accepted instead of refused as a removal.
    made = await storage.create(PODS, "default", pod("p"))
    replaced = pod("p")
    replaced["metadata"]["resourceVersion"] = made["metadata"]["resourceVersion"]
    updated = await storage.update(PODS, "default", "p", lambda _current: replaced)
    assert updated["spec"]["tolerations"] == made["spec"]["tolerations"]


async def test_pod_templates_get_no_tolerations(storage: ResourceStorage) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}},
                           "template": {"metadata": {"labels": {"a": "b"}},
                                        "spec": pod("x")["spec"]}}}
    made = await storage.create(DEPLOYMENTS, "default", deployment)
    assert "tolerations" not in made["spec"]["template"]["spec"]


async def test_null_tolerations_get_the_defaults(storage: ResourceStorage) -> None:
    body = pod("q")
    body["spec"]["tolerations"] = None
    made = await storage.create(PODS, "default", body)
    assert [t["key"] for t in made["spec"]["tolerations"]] == [NOT_READY_TAINT, UNREACHABLE_TAINT]


async def test_negative_seconds_are_refused(storage: ResourceStorage) -> None:
    with pytest.raises(ValueError, match="--default-unreachable-toleration-seconds must be 0"):
        configure_tolerations(storage, DefaultTolerationSeconds(0, -1))
    assert toleration_seconds_of(storage) == DefaultTolerationSeconds(300, 300)
