"""The scheduler's label and request rules agree with dockyard.objects' (written in parallel)."""

from __future__ import annotations

import random

import pytest

from dockyard.objects import pod as pod_objects
from dockyard.objects.selectors import LabelSelector, SelectorError
from dockyard.scheduler.labels import selector_matches
from dockyard.scheduler.podinfo import pod_requests
from tests.unit.scheduler_builders import make_pod

pytestmark = pytest.mark.unit


def random_selector(rng: random.Random) -> dict:
    selector: dict = {}
    if rng.random() < 0.6:
        selector["matchLabels"] = {
            rng.choice("abc"): rng.choice("xyz") for _ in range(rng.randint(1, 2))
        }
    exprs = []
    for _ in range(rng.randint(0, 2)):
        op = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
        expr = {"key": rng.choice("abc"), "operator": op}
        if op in ("In", "NotIn"):
            expr["values"] = rng.sample(["x", "y", "z"], rng.randint(1, 2))
        exprs.append(expr)
    if exprs:
        selector["matchExpressions"] = exprs
    return selector


def test_selector_matching_agrees_with_objects_selectors() -> None:
    rng = random.Random(4)
    compared = 0
    for _ in range(2000):
        selector = random_selector(rng)
        labels = {k: rng.choice("xyz") for k in "abc" if rng.random() < 0.6}
        try:
            theirs = LabelSelector.from_dict(selector).matches(labels)
        except SelectorError:
            continue
        assert selector_matches(selector, labels) == theirs, (selector, labels)
        compared += 1
    assert compared > 1500
    assert selector_matches(None, {"a": "x"}) is LabelSelector.from_dict(None).matches({"a": "x"})


@pytest.mark.parametrize(
    "pod",
    [
        make_pod("a").requests(cpu="500m", memory="1Gi").container(cpu="250m"),
        make_pod("b").requests(cpu="1").init_container(cpu="2"),
        make_pod("c")
        .requests(cpu="1")
        .init_container(sidecar=True, cpu="1")
        .init_container(cpu="1500m"),
        make_pod("d").requests(ephemeral_storage="1Gi", extended={"example.com/gpu": "2"}),
    ],
)
def test_effective_requests_agree_with_objects_pod(pod: dict) -> None:
    ours = pod_requests(pod)
    ours.pop("pods")
    assert ours == {k: v for k, v in pod_objects.pod_requests(pod).items() if v}
