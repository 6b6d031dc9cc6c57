"""Timestamps and kubectl durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dockyard.objects.meta import (
    controller_of,
    format_time,
    human_duration,
    is_controlled_by,
    labels,
    owner_reference,
    parse_time,
    since,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (2 * 86400 + 5 * 3600, "2d5h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_time_round_trip() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert format_time(moment) == "2024-05-01T12:00:00Z"
    assert parse_time("2024-05-01T12:00:00Z") == moment
    assert parse_time("2024-05-01T14:00:00+02:00") == moment
    assert parse_time("2024-05-01T12:00:00.000001Z") == moment + timedelta(microseconds=1)
    assert format_time(datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))) == (
        "2024-05-01T12:00:00Z"
    )
    assert parse_time("yesterday") is None and parse_time(None) is None


def test_since_and_labels() -> None:
    now = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
    assert since("2024-05-01T12:00:00Z", now) == "5s"
    assert since(None, now) == "<unknown>"
    assert labels({"metadata": {"labels": {"a": "b"}}}) == {"a": "b"}
    assert labels({}) == {}


def test_owner_references() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r", "uid": "u1"}}
    ref = owner_reference(owner)
    assert ref == {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "r",
        "uid": "u1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    pod = {"metadata": {"ownerReferences": [{**ref, "controller": False}, ref]}}
    assert controller_of(pod) == ref
    assert is_controlled_by(pod, owner)
    assert not is_controlled_by(pod, {"metadata": {"uid": "u2"}})
    assert controller_of({"metadata": {}}) is None
