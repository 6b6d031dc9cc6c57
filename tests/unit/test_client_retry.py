"""retry_on_conflict: retries 409 Conflict only, at most `attempts` times."""

from __future__ import annotations

import pytest

from dockyard.client.errors import AlreadyExistsError, ConflictError, NotFoundError
from dockyard.client.retry import retry_on_conflict

pytestmark = pytest.mark.unit


def conflict() -> ConflictError:
    return ConflictError(409, "Conflict", "the object has been modified")


async def test_retries_conflicts_until_success() -> None:
    calls = 0

    async def write() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise conflict()
        return "written"

    assert await retry_on_conflict(write, attempts=5, base_delay=0.001) == "written"
    assert calls == 3


async def test_gives_up_after_attempts() -> None:
    calls = 0

    async def write() -> None:
        nonlocal calls
        calls += 1
        raise conflict()

    with pytest.raises(ConflictError):
        await retry_on_conflict(write, attempts=4, base_delay=0.001)
    assert calls == 4


@pytest.mark.parametrize("error", [
    AlreadyExistsError(409, "AlreadyExists", "exists"),
    NotFoundError(404, "NotFound", "gone"),
])
async def test_other_errors_are_not_retried(error: Exception) -> None:
    calls = 0

    async def write() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await retry_on_conflict(write, base_delay=0.001)
    assert calls == 1
