"""Pure parts of the runtime: port mapping checks, CNI config, pids clamp, runc messages,
overlay options, conmon argv, record round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.runtime.cgroups import MAX_PIDS_LIMIT, clamp_pids_limit
from dockyard.runtime.monitor import MonitorPaths, conmon_argv
from dockyard.runtime.network import CniNetwork, NetworkError, PortMapping, validate_port_mappings
from dockyard.runtime.records import (
    ContainerRecord,
    RecordCache,
    SandboxConfig,
    SandboxRecord,
    to_json,
)
from dockyard.runtime.rootfs import RootfsError, overlay_options
from dockyard.runtime.runc import clean_message

pytestmark = pytest.mark.unit


def test_port_mappings_validated() -> None:
    validate_port_mappings([PortMapping(8080, 80), PortMapping(8080, 80, "udp")])
    for bad, match in (
        ([PortMapping(70000, 80)], "host port"),
        ([PortMapping(8080, 0)], "container port"),
        ([PortMapping(8080, 80, "icmp")], "protocol"),
        ([PortMapping(8080, 80), PortMapping(8080, 81)], "mapped twice"),
    ):
        with pytest.raises(NetworkError, match=match):
            validate_port_mappings(bad)
    assert PortMapping(1, 2, "TCP", "127.0.0.1").to_cni() == {
        "hostPort": 1, "containerPort": 2, "protocol": "tcp", "hostIP": "127.0.0.1"
    }  # fmt: skip


def test_cni_conflist_is_per_runtime(tmp_path: Path) -> None:
    a = CniNetwork(run_dir=tmp_path / "a", bridge="br-a", pod_cidr="10.1.0.0/24",
                   cni_bin_dir=Path("/usr/lib/cni"))  # fmt: skip
    b = CniNetwork(run_dir=tmp_path / "b", bridge="br-b", pod_cidr="10.2.0.0/24",
                   cni_bin_dir=Path("/usr/lib/cni"))  # fmt: skip
    conf = a.conflist()
    assert conf["cniVersion"] == "1.0.0"
    bridge, portmap = conf["plugins"]
    assert bridge["bridge"] == "br-a" and bridge["isGateway"] and not bridge["ipMasq"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.1.0.0/24"}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "a" / "cni" / "networks")
    assert portmap["type"] == "portmap" and portmap["capabilities"] == {"portMappings": True}
    assert a.name != b.name and a.masq_chain != b.masq_chain and len(a.masq_chain) <= 28
    with pytest.raises(NetworkError, match="bridge name"):
        CniNetwork(run_dir=tmp_path, bridge="a-bridge-name-too-long", pod_cidr="10.0.0.0/8",
                   cni_bin_dir=Path("/usr/lib/cni"))  # fmt: skip


def test_pids_limit_clamped() -> None:
    assert clamp_pids_limit(None, 1024) == 1024
    assert clamp_pids_limit(0, 1024) == 1024
    assert clamp_pids_limit(50, 1024) == 50
    assert clamp_pids_limit(10**6, 1024) == MAX_PIDS_LIMIT == 4096
    assert clamp_pids_limit(None, 10**6) == 4096


def test_runc_message_cleaned() -> None:
    raw = 'time="2026-11-26T00:00:00Z" level=error msg="container \\"x\\" does not exist"\n'
    assert clean_message(raw) == 'container "x" does not exist'
    assert clean_message("") == "failed without a message"


def test_overlay_options_top_first_and_refuses_separators() -> None:
    assert overlay_options(["/l/bottom", "/l/top"], "/u", "/w") == (
        "lowerdir=/l/top:/l/bottom,upperdir=/u,workdir=/w"
    )
    for bad in ("/a:b", "/a,b"):
        with pytest.raises(RootfsError):
            overlay_options([bad], "/u", "/w")


def test_conmon_argv(tmp_path: Path) -> None:
    paths = MonitorPaths(bundle=tmp_path / "b", persist_dir=tmp_path / "p",
                         exit_dir=tmp_path / "e", log_path=tmp_path / "0.log")  # fmt: skip
    argv = conmon_argv("abc", "web", paths, tmp_path / "runc", "/usr/sbin/runc", tty=False,
                       stdin=False, log_size_max=100)  # fmt: skip
    assert argv[argv.index("-l") + 1] == f"k8s-file:{tmp_path / '0.log'}"
    assert argv[argv.index("--exit-dir") + 1] == str(tmp_path / "e")
    assert f"--root={tmp_path / 'runc'}" in argv and "-t" not in argv and "-i" not in argv
    assert argv[argv.index("--log-size-max") + 1] == "100"


def test_sandbox_record_round_trips() -> None:
    config = SandboxConfig(pod_uid="u", name="p", port_mappings=[PortMapping(1, 2)])
    rec = SandboxRecord(id="a", config=to_json(config), netns_path="/n", uts_path="/u",
                        ipc_path="/i", ip="10.0.0.2", cni_result={}, cgroup_path="/c",
                        created_at=1.0)  # fmt: skip
    assert rec.sandbox_config() == config


def test_record_cache_sees_other_writers(tmp_path: Path) -> None:
    mine = RecordCache(tmp_path, ContainerRecord)
    theirs = RecordCache(tmp_path, ContainerRecord)

    def record(cid: str, created: float, pid: int = 0) -> ContainerRecord:
        return ContainerRecord(id=cid, sandbox_id="s", name="c", attempt=0, image="",
                               labels={}, annotations={}, container_dir="/d", log_path="/l",
                               cgroup_path="/c", created_at=created, pid=pid)  # fmt: skip

    mine.put("a", record("a", 2.0))
    theirs.put("b", record("b", 1.0))
    assert [r.id for r in mine.all()] == ["b", "a"]  # oldest first, b written by the other
    theirs.put("a", record("a", 2.0, pid=42))  # an update: a new file renamed over
    assert (got := mine.get("a")) is not None and got.pid == 42
    theirs.remove("b")
    assert mine.get("b") is None and [r.id for r in mine.all()] == ["a"]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        mine.all()


def test_parse_signal() -> None:
    from dockyard.runtime.runtime import RequestError, parse_signal

    assert parse_signal("SIGTERM") == parse_signal("term") == parse_signal("15") == 15
    assert parse_signal("SIGKILL") == 9 and parse_signal("QUIT") == 3
    for bad in ("SIGNOPE", "0", "999", ""):
        with pytest.raises(RequestError, match="not a signal"):
            parse_signal(bad)
