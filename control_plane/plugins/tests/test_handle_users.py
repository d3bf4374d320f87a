"""`HandleUsers` on its own: a retired handle is stopped when its last user lets go, never taken again once retired
(the caller fetches the current one), and at most RETIRED_MAX wait. The runtime-level behaviour (real plugins,
real reloads) is in `test_reload_in_flight.py`."""

from __future__ import annotations

import asyncio

import pytest

from control_plane.plugins import handle_users
from control_plane.plugins.handle_users import HandleUsers, taken


class Handle:
    """Stands in for a `PluginHandle`: `HandleUsers` only hashes handles and names them in its logs."""

    def __init__(self, slug: str) -> None:
        self.slug = slug


@pytest.fixture
def stopped() -> list[Handle]:
    return []


@pytest.fixture
def users(stopped) -> HandleUsers:
    return HandleUsers(stopped.append)


def test_a_retired_handle_in_use_is_stopped_when_its_last_user_is_done(users, stopped):
    old = Handle("p")
    assert users.acquire([old]) and users.acquire([old])
    assert users.retire(old) == []  # two users: it waits
    users.release([old])
    assert stopped == [] and users.waiting() == 1
    users.release([old])
    assert stopped == [old] and users.waiting() == 0


def test_a_retired_handle_nobody_uses_is_stopped_at_once_and_never_taken_again(users, stopped):
    old = Handle("p")
    assert users.retire(old) == [old]  # the caller stops it
    assert not users.acquire([old]), "a thread that fetched it before the reload must fetch the new one"
    new = Handle("p")
    assert not users.acquire([new, old]) and users.acquire([new])  # all or nothing
    users.release([new])
    assert stopped == []


def test_past_retired_max_the_oldest_waiting_handle_is_stopped_at_once(users, stopped, monkeypatch, caplog):
    monkeypatch.setattr(handle_users, "RETIRED_MAX", 2)
    handles = [Handle(f"p{n}") for n in range(3)]
    assert users.acquire(handles)
    assert users.retire(handles[0]) == [] and users.retire(handles[1]) == []
    assert users.retire(handles[2]) == [handles[0]]
    assert "stopped the oldest" in caplog.text
    users.release(handles)
    assert stopped == handles[1:]  # the oldest one's user releasing it stops nothing twice


def test_an_expired_wait_stops_the_handle_and_drain_hands_over_the_rest(users, stopped):
    slow, stuck = Handle("slow"), Handle("stuck")
    assert users.acquire([slow, stuck])
    users.retire(slow)
    users.retire(stuck)
    users.expire(slow)
    assert stopped == [slow]
    users.expire(slow)  # already stopped: nothing more
    assert users.drain() == [stuck] and users.waiting() == 0
    users.release([slow, stuck])
    assert stopped == [slow]


def test_a_handle_taken_for_a_cancelled_caller_is_released_once_taken():
    released = []

    async def cancelled_while_taking() -> None:
        gate = asyncio.Event()

        async def take() -> str:
            await gate.wait()
            return "handle"

        caller = asyncio.ensure_future(taken(take(), released.append))
        await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert released == []
        gate.set()
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(cancelled_while_taking())
    assert released == ["handle"]
