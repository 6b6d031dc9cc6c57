"""The official Python client (`kubernetes`) against a dockyard server's kubeconfig."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.servers import RunningServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def api_client(dockyard_server: RunningServer) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(dockyard_server.kubeconfig))
    try:
        yield api
    finally:
        api.close()


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        },
    }


def test_namespaces_and_configmaps(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pyclient")))
    names = [n.metadata.name for n in core.list_namespace().items]
    assert "pyclient" in names
    core.create_namespaced_config_map(
        "pyclient", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"), data={"k": "v"})
    )
    assert core.read_namespaced_config_map("cfg", "pyclient").data == {"k": "v"}
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_config_map("missing", "pyclient")
    assert raised.value.status == 404


def test_deployment_patch_and_scale(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment("default", deployment("pyweb"))
    apps.patch_namespaced_deployment(
        "pyweb", "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}},
    )
    got = apps.read_namespaced_deployment("pyweb", "default")
    assert [c.image for c in got.spec.template.spec.containers] == ["nginx:2"]
    apps.patch_namespaced_deployment_scale("pyweb", "default", {"spec": {"replicas": 3}})
    scale = apps.read_namespaced_deployment_scale("pyweb", "default")
    assert scale.spec.replicas == 3
    apps.delete_namespaced_deployment("pyweb", "default")


def test_watch_stream_sees_existing_then_new(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched-1"))
    )
    seen: list[tuple[str, str]] = []
    w = watch.Watch()

    def consume() -> None:
        for event in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=20):
            name = event["object"].metadata.name
            if name.startswith("watched-"):
                seen.append((event["type"], name))
            if ("ADDED", "watched-2") in seen:
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched-2"))
    )
    thread.join(30)
    assert ("ADDED", "watched-1") in seen and ("ADDED", "watched-2") in seen
