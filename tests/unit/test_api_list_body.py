"""The unfiltered list body: stored bytes spliced and joined, equal to encoding the list."""

from __future__ import annotations

import orjson
import pytest

from dockyard.api.handlers import _join_list
from dockyard.api.storage import decode, encode, encoded_with_version
from dockyard.store.base import KeyValue

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("count", [0, 1, 3])
def test_joined_list_is_the_json_of_the_list(count: int) -> None:
    objects = [{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": f"c{i}", "labels": {"i": str(i)}}, "data": {"k": "v"}}
               for i in range(count)]
    kvs = [KeyValue(f"/registry/configmaps/d/c{i}", encode(o), 5, 10 + i)
           for i, o in enumerate(objects)]
    head = b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"20"}}'
    body = _join_list(head[:-1] + b',"items":[', [encoded_with_version(kv) for kv in kvs],
                      b"]}")
    expected = {**orjson.loads(head), "items": [decode(kv) for kv in kvs]}
    assert orjson.loads(body) == expected
    assert [i["metadata"]["resourceVersion"] for i in expected["items"]] == [
        str(10 + i) for i in range(count)]
