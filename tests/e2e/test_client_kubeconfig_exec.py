"""Exec credential plugins (users[].user.exec) against a real server: token from a plugin."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest
import yaml

from dockyard.client import ApiClient, KubeconfigError, load_kubeconfig
from tests.servers import RunningServer

pytestmark = pytest.mark.e2e


def write_plugin(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def kubeconfig_with_exec(server: RunningServer, tmp: Path, exec_spec: dict[str, object]) -> str:
    config = yaml.safe_load(server.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"exec": exec_spec}
    path = tmp / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


async def test_token_from_exec_plugin_is_accepted(
    dockyard_server: RunningServer, tmp_path: Path
) -> None:
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": dockyard_server.token}}
    (tmp_path / "cred.json").write_text(json.dumps(credential))
    # The plugin checks it gets its env and KUBERNETES_EXEC_INFO, as client-go provides them.
    write_plugin(tmp_path / "plugin.sh",
                 'test "$PLUGIN_FLAG" = on || exit 3\n'
                 'echo "$KUBERNETES_EXEC_INFO" | grep -q ExecCredential || exit 4\n'
                 'cat "$(dirname "$0")/cred.json"\n')
    path = kubeconfig_with_exec(dockyard_server, tmp_path, {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "./plugin.sh",
        "env": [{"name": "PLUGIN_FLAG", "value": "on"}]})
    config = load_kubeconfig(path)
    assert config.token == dockyard_server.token
    async with ApiClient(config) as api:
        name = f"exec-{uuid.uuid4().hex[:8]}"
        cms = api.resource("v1", "configmaps", "default")
        await cms.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
        await cms.delete(name)


def test_failing_plugin_is_named(dockyard_server: RunningServer, tmp_path: Path) -> None:
    write_plugin(tmp_path / "broken.sh", 'echo "login expired" >&2\nexit 7\n')
    path = kubeconfig_with_exec(dockyard_server, tmp_path, {"command": "./broken.sh"})
    with pytest.raises(KubeconfigError, match="exited with 7: login expired"):
        load_kubeconfig(path)
    missing = kubeconfig_with_exec(dockyard_server, tmp_path, {
        "command": "no-such-plugin-anywhere", "installHint": "install it from the vendor"})
    with pytest.raises(KubeconfigError, match="install it from the vendor"):
        load_kubeconfig(missing)
    write_plugin(tmp_path / "garbage.sh", "echo not-json\n")
    garbage = kubeconfig_with_exec(dockyard_server, tmp_path, {"command": "./garbage.sh"})
    with pytest.raises(KubeconfigError, match="did not print an ExecCredential"):
        load_kubeconfig(garbage)
