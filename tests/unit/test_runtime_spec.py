"""OCI runtime spec generation: overrides, env, user lookup, defaults, refusals."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.spec import (
    DEFAULT_CAPABILITIES,
    MASKED_PATHS,
    READONLY_PATHS,
    Mount,
    Resources,
    SandboxNamespaces,
    SpecError,
    SpecRequest,
    User,
    build_spec,
    capabilities_from_mask,
    cpu_quota,
    cpu_shares,
    exec_process,
    read_rootfs_file,
    resolve_user,
)

pytestmark = pytest.mark.unit

IMAGE = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "Env": ["PATH=/bin", "A=image"],
        "Entrypoint": ["/entry"],
        "Cmd": ["default-arg"],
        "WorkingDir": "/srv",
    },
}
PASSWD = "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\nbroken line\n"
GROUP = "root:x:0:\nwebgrp:x:1001:\nextra:x:2000:web,other\nother:x:3000:\n"


def spec(
    request: SpecRequest | None = None,
    image: dict[str, Any] | None = None,
    user: User | None = None,
    **kw: Any,
) -> dict[str, Any]:
    return build_spec(
        image_config=IMAGE if image is None else image,
        request=request or SpecRequest(),
        user=user or User(),
        rootfs=Path("/tmp/rootfs"),
        namespaces=SandboxNamespaces(network="/run/x/netns/abc", uts="/run/x/uts/abc"),
        cgroups_path="/dockyard/t/pod/c",
        pids_limit=1024,
        **kw,
    )


@pytest.mark.parametrize(
    ("command", "args", "argv"),
    [
        ((), (), ["/entry", "default-arg"]),  # image Entrypoint + Cmd
        (("/bin/echo",), (), ["/bin/echo"]),  # command replaces Entrypoint and drops Cmd
        ((), ("x", "y"), ["/entry", "x", "y"]),  # args replace Cmd only
        (("/bin/sh", "-c"), ("echo hi",), ["/bin/sh", "-c", "echo hi"]),
    ],
)
def test_command_and_args_override_like_kubernetes(
    command: tuple[str, ...], args: tuple[str, ...], argv: list[str]
) -> None:
    assert spec(SpecRequest(command=command, args=args))["process"]["args"] == argv


def test_no_command_anywhere_is_refused() -> None:
    with pytest.raises(SpecError, match="command"):
        spec(image={"config": {}})


def test_env_is_merged_request_wins_and_hostname_added() -> None:
    env = spec(SpecRequest(env={"A": "request", "B": "b"}, hostname="pod1"))["process"]["env"]
    assert env == ["PATH=/bin", "A=request", "B=b", "HOSTNAME=pod1"]


def test_path_default_when_image_has_none() -> None:
    env = spec(image={"config": {"Cmd": ["x"]}})["process"]["env"]
    assert env[0].startswith("PATH=/usr/local/sbin:")


def test_bad_env_name_refused() -> None:
    with pytest.raises(SpecError, match="env"):
        spec(SpecRequest(env={"A=B": "x"}))


def test_working_dir_from_image_or_request() -> None:
    assert spec()["process"]["cwd"] == "/srv"
    assert spec(SpecRequest(working_dir="/app/"))["process"]["cwd"] == "/app"


@pytest.mark.parametrize("cwd", ["/proc", "/proc/self", "/sys/fs", "relative", "/a/../proc"])
def test_working_dir_under_proc_sys_or_relative_refused(cwd: str) -> None:
    with pytest.raises(SpecError, match="working dir"):
        spec(SpecRequest(working_dir=cwd))


def test_image_volume_reaching_out_refused() -> None:
    for vol in ("/data/../../etc", "relative", "/proc/1"):
        with pytest.raises(SpecError, match="Volumes"):
            spec(image={"config": {"Cmd": ["x"], "Volumes": {vol: {}}}})
    assert spec(image={"config": {"Cmd": ["x"], "Volumes": {"/data": {}}}})


def test_default_hardening() -> None:
    s = spec()
    caps = s["process"]["capabilities"]
    assert caps["bounding"] == DEFAULT_CAPABILITIES == caps["effective"] == caps["permitted"]
    assert len(DEFAULT_CAPABILITIES) == 14 and "CAP_SYS_ADMIN" not in DEFAULT_CAPABILITIES
    assert s["process"]["noNewPrivileges"] is True
    assert s["linux"]["maskedPaths"] == MASKED_PATHS
    assert s["linux"]["readonlyPaths"] == READONLY_PATHS
    dev = next(m for m in s["mounts"] if m["destination"] == "/dev")
    assert dev["type"] == "tmpfs"
    sysfs = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert "ro" in sysfs["options"]
    assert s["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    seccomp = s["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = seccomp["syscalls"][0]["names"]
    assert {"keyctl", "unshare", "mount", "bpf", "kexec_load"} <= set(denied)
    clone_rules = [r for r in seccomp["syscalls"] if r["names"] == ["clone"]]
    user_ns = 0x10000000  # CLONE_NEWUSER gets its own rule: (flags & bit) == bit is refused
    assert {"index": 0, "value": user_ns, "valueTwo": user_ns, "op": "SCMP_CMP_MASKED_EQ"} in [
        r["args"][0] for r in clone_rules
    ]


def test_non_root_user_keeps_caps_only_in_bounding_set() -> None:
    caps = spec(user=User(uid=1000, gid=1000))["process"]["capabilities"]
    assert caps["bounding"] == DEFAULT_CAPABILITIES
    assert caps["effective"] == [] == caps["permitted"]


def test_privileged_only_when_asked() -> None:
    s = spec(SpecRequest(privileged=True))
    assert "CAP_SYS_ADMIN" in s["process"]["capabilities"]["bounding"]
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    assert "seccomp" not in s["linux"]
    assert s["process"]["noNewPrivileges"] is False
    # runc cannot grant what the runtime lacks: the host's bounding set caps the set
    lacking = spec(
        SpecRequest(privileged=True), available_capabilities=capabilities_from_mask(0x1FFFEFFFFFF)
    )
    assert "CAP_SYS_RESOURCE" not in lacking["process"]["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" in lacking["process"]["capabilities"]["bounding"]
    assert capabilities_from_mask(0b101) == ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"]


def test_namespaces_join_sandbox_by_path() -> None:
    ns = {n["type"]: n.get("path") for n in spec()["linux"]["namespaces"]}
    assert ns == {
        "pid": None,
        "mount": None,
        "network": "/run/x/netns/abc",
        "ipc": None,
        "uts": "/run/x/uts/abc",
    }


def test_resources_follow_kubernetes_formulas() -> None:
    # 250m request -> 250*1024/1000 = 256 shares; 500m limit -> 50000us per 100000us
    r = spec(SpecRequest(resources=Resources(250, 500, 64 * 2**20, 100)))["linux"]["resources"]
    assert r["cpu"] == {"shares": 256, "quota": 50000, "period": 100000}
    assert r["memory"] == {"limit": 64 * 2**20}
    assert r["pids"] == {"limit": 1024}  # the runtime passes the clamped limit
    assert cpu_shares(None) == 2 and cpu_shares(1) == 2 and cpu_shares(1000) == 1024
    assert cpu_quota(1) == 1000  # the kernel's minimum quota


def test_tiny_memory_limit_refused() -> None:
    with pytest.raises(SpecError, match="memory"):
        spec(SpecRequest(resources=Resources(memory_limit_bytes=1024)))


def test_rlimit_and_cgroup_path() -> None:
    s = spec(nofile_limit=20000)
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000}]
    assert s["linux"]["cgroupsPath"] == "/dockyard/t/pod/c"


def test_mounts_allowed_only_from_allowed_roots(tmp_path: Path) -> None:
    allowed = tmp_path / "vols"
    (allowed / "v1").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", allowed / "sneaky")
    ok = spec(
        SpecRequest(mounts=[Mount(allowed / "v1", "/data", True)]), allowed_mount_roots=[allowed]
    )
    bind = ok["mounts"][-1]
    assert bind["source"] == str(allowed / "v1") and "ro" in bind["options"]
    for source in (tmp_path / "outside", allowed / "sneaky", Path("/etc")):
        with pytest.raises(SpecError, match="outside the allowed"):
            spec(SpecRequest(mounts=[Mount(source, "/data")]), allowed_mount_roots=[allowed])
    with pytest.raises(SpecError, match="under /proc"):
        spec(
            SpecRequest(mounts=[Mount(allowed / "v1", "/proc/sys")]), allowed_mount_roots=[allowed]
        )


def test_resolve_user_forms() -> None:
    assert resolve_user("", PASSWD, GROUP) == User(0, 0, ())
    assert resolve_user("web", PASSWD, GROUP) == User(1000, 1001, (2000,))
    assert resolve_user("web:extra", PASSWD, GROUP) == User(1000, 2000, ())
    assert resolve_user("1000", PASSWD, GROUP) == User(1000, 1001, (2000,))
    assert resolve_user("4242", PASSWD, GROUP) == User(4242, 0, ())  # unknown uid: gid 0
    assert resolve_user("4242:77", None, None) == User(4242, 77, ())
    assert resolve_user("0:other", PASSWD, GROUP) == User(0, 3000, ())


@pytest.mark.parametrize("user", ["-1", "4294967295", "99999999999", "0:-5", "0:4294967295"])
def test_user_ids_out_of_range_refused(user: str) -> None:
    with pytest.raises(SpecError, match="out of range"):
        resolve_user(user, PASSWD, GROUP)
    with pytest.raises(SpecError, match="out of range"):
        spec(user=User(uid=2**32 - 1))


def test_unknown_user_or_group_refused() -> None:
    with pytest.raises(SpecError, match="no user 'nobody'"):
        resolve_user("nobody", PASSWD, GROUP)
    with pytest.raises(SpecError, match="no group 'nogroup'"):
        resolve_user("web:nogroup", PASSWD, GROUP)


def test_read_rootfs_file_keeps_symlinks_inside(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "real").write_text("inside\n")
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    os.symlink(str(secret), rootfs / "etc" / "passwd")  # absolute: must resolve in rootfs
    assert read_rootfs_file(rootfs, "/etc/passwd") is None  # rootfs/tmp/.../secret is absent
    os.unlink(rootfs / "etc" / "passwd")
    os.symlink("../../../../../real", rootfs / "etc" / "passwd")  # .. clamps at the root
    assert read_rootfs_file(rootfs, "/etc/passwd") == "inside\n"
    os.unlink(rootfs / "etc" / "passwd")
    os.symlink("/etc/passwd", rootfs / "etc" / "passwd")  # a loop
    with pytest.raises(SpecError, match="too many levels of symbolic links"):
        read_rootfs_file(rootfs, "/etc/passwd")
    assert read_rootfs_file(rootfs, "/etc/group") is None


def test_exec_process_keeps_identity() -> None:
    s = spec(user=User(uid=5, gid=6))
    p = exec_process(s, ["ls", "-l"], tty=True)
    assert p["args"] == ["ls", "-l"] and p["terminal"] is True
    assert p["user"] == s["process"]["user"] and p["env"] == s["process"]["env"]
    with pytest.raises(SpecError):
        exec_process(s, [], tty=False)
