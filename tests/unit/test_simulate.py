"""The simulator: synthetic and file clusters, what-if changes, the report, and the CLI's JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dockyard.scheduler.simulate import (
    Options,
    SimulationError,
    Synthetic,
    add_nodes,
    drain,
    load_list,
    parse_add_nodes,
    simulate,
    synthetic_cluster,
)
from tests.unit.scheduler_builders import make_node, make_pod

pytestmark = pytest.mark.unit
DOCKYARD = str(Path(sys.executable).parent / "dockyard")


def v1_list(*items: dict) -> dict:
    return json.loads(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)}))  # type: ignore[no-any-return]


def small_cluster() -> list[dict]:
    return [
        make_node("n1").allocatable(cpu="4", memory="8Gi"),
        make_node("n2").allocatable(cpu="4", memory="8Gi"),
        make_pod("placed").requests(cpu="3", memory="1Gi").on_node("n1"),
        make_pod("a").requests(cpu="1", memory="1Gi"),
        make_pod("b").requests(cpu="2", memory="1Gi"),
    ]


def run_cli(*args: str) -> dict:
    done = subprocess.run(
        [DOCKYARD, "simulate", *args, "-o", "json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_report_counts_and_gap() -> None:
    nodes, pods = load_objects(small_cluster())
    report = simulate(nodes, pods, Options(profile="pack"))
    # "a" (1 cpu) packs onto n1 beside "placed" (3 cpu); "b" (2 cpu) must go to n2
    assert (report.pods, report.placed, report.pending) == (3, 3, 0)
    assert report.nodes_used == 2 and report.lower_bound == 2 and report.gap == 0.0
    assert report.utilisation["cpu"] == pytest.approx(6 / 8)


def load_objects(items: list[dict]) -> tuple[list, list]:
    return [i for i in items if i["kind"] == "Node"], [i for i in items if i["kind"] == "Pod"]


def test_from_file_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(v1_list(*small_cluster())))
    (tmp_path / "c.json").write_text(json.dumps(v1_list(*small_cluster())))
    for name in ("c.yaml", "c.json"):
        nodes, pods = load_list(tmp_path / name)
        assert len(nodes) == 2 and len(pods) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("kind: List\nitems:\n- kind: Service\n  metadata: {name: s}\n", "only Node and Pod"),
        ("{not yaml: [", "neither valid YAML nor JSON"),
        ("- 1\n- 2\n", "expected a v1 List"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(SimulationError, match=message):
        load_list(path)
    with pytest.raises(SimulationError, match="cannot read"):
        load_list(tmp_path / "missing.yaml")


def test_drain_and_add_nodes() -> None:
    nodes, pods = load_objects(small_cluster())
    drain(nodes, pods, "n1")
    assert nodes[0]["spec"]["unschedulable"] and "nodeName" not in pods[0]["spec"]
    report = simulate(nodes, pods, Options())
    # n2 has 4 cpu for 3 + 1 + 2 = 6 cpu of pods: "placed" (3) goes first in order, then "a"
    assert report.placed == 2 and report.pending == 1
    assert "Insufficient cpu" in next(iter(report.unschedulable))
    add_nodes(nodes, 1, {"cpu": "4", "memory": "8Gi"})
    assert simulate(nodes, pods, Options()).pending == 0
    with pytest.raises(SimulationError, match="no node named"):
        drain(nodes, pods, "nope")


@pytest.mark.parametrize(
    ("text", "want"),
    [("3", (3, None)), ("2:cpu=4,memory=16Gi", (2, {"cpu": "4", "memory": "16Gi"}))],
)
def test_parse_add_nodes(text: str, want: tuple) -> None:
    assert parse_add_nodes(text) == want


@pytest.mark.parametrize("text", ["x", "0", "2:cpu", "2:cpu=lots"])
def test_parse_add_nodes_rejects(text: str) -> None:
    with pytest.raises(SimulationError):
        parse_add_nodes(text)


def test_pod_on_unknown_node_is_named() -> None:
    nodes = [make_node("n1")]
    pods = [make_pod("lost").on_node("n9")]
    with pytest.raises(SimulationError, match="default/lost is bound to node 'n9'"):
        simulate(nodes, pods, Options())


def test_inputs_are_not_modified() -> None:
    nodes, pods = synthetic_cluster(Synthetic(nodes=5, pods=20))
    before = json.dumps([nodes, pods])
    simulate(nodes, pods, Options(solver="batch", profile="pack"))
    assert json.dumps([nodes, pods]) == before


def test_churn_replaces_pods() -> None:
    nodes, pods = synthetic_cluster(Synthetic(nodes=40, pods=100))
    report = simulate(nodes, pods, Options(churn=0.3))
    assert report.churned == 30 and report.pods == 130 and report.placed == 100


def test_preemption_in_simulation() -> None:
    nodes = [make_node("n1").allocatable(cpu="2")]
    pods = [
        make_pod("low").requests(cpu="2").on_node("n1"),
        make_pod("high").requests(cpu="2").priority(100),
    ]
    assert simulate(nodes, pods, Options()).pending == 1
    report = simulate(nodes, pods, Options(preempt=True))
    assert report.preempted == 1 and report.pending == 0


def test_batch_beats_greedy_packing_on_a_mixed_cluster() -> None:
    nodes, pods = synthetic_cluster(Synthetic(nodes=40, pods=300))
    greedy = simulate(nodes, pods, Options(profile="pack"))
    # a generous time limit: the pattern search proves optimality in well under a second
    # unloaded, and a loaded test machine must not turn this into a race
    batch = simulate(nodes, pods, Options(solver="batch", profile="pack", time_limit=30))
    assert batch.nodes_used <= greedy.nodes_used
    assert batch.lower_bound <= batch.nodes_used
    assert batch.gap == pytest.approx(batch.nodes_used / batch.lower_bound - 1, abs=1e-5)


@pytest.mark.slow  # starts the dockyard CLI, a few seconds each
def test_cli_json_synthetic() -> None:
    out = run_cli("--nodes", "20", "--pods", "150", "--solver", "batch", "--profile", "pack")
    for key in (
        "pods",
        "placed",
        "nodes",
        "nodes_used",
        "lower_bound",
        "gap",
        "seconds",
        "pods_per_second",
        "utilisation",
        "fragmentation",
        "latency_ms",
    ):
        assert key in out
    assert out["pods"] == 150 and out["nodes"] == 20 and out["placed"] == 150
    assert out["gap"] == pytest.approx(out["nodes_used"] / out["lower_bound"] - 1, abs=1e-5)


@pytest.mark.slow  # starts the dockyard CLI, a few seconds each
def test_cli_json_from_file_with_what_ifs(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(v1_list(*small_cluster())))
    out = run_cli(
        "--from-file",
        str(path),
        "--drain",
        "n1",
        "--add-nodes",
        "1:cpu=4,memory=8Gi",
        "--profile",
        "spread",
    )
    assert out["nodes"] == 3 and out["placed"] == 3 and out["pending"] == 0
    assert out["what_if"] == ["drain n1", "add 1:cpu=4,memory=8Gi"]


@pytest.mark.slow  # starts the dockyard CLI, a few seconds each
def test_cli_errors_are_clear(tmp_path: Path) -> None:
    done = subprocess.run(
        [DOCKYARD, "simulate", "--from-file", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "cannot read" in done.stderr
    done = subprocess.run(
        [DOCKYARD, "simulate", "--from-cluster", "--kubeconfig", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--from-cluster" in done.stderr
