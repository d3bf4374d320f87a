"""`BudgetPublisher`: the edges get every round's spend figures, the budgets' rows the newest at most once every
`store_interval_s` while usage flows, at once after a quiet spell, and always the last ones."""

from __future__ import annotations

import asyncio
from typing import Any

from control_plane.bridge import budgets as module
from control_plane.bridge.budgets import BudgetPublisher


class _Publisher(BudgetPublisher):
    """Publishing without NATS: each round's figures are a counter (what `publish` leaves to be stored)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(None, **kwargs)  # type: ignore[arg-type]
        self.rounds = 0

    async def publish(self, namespace: str) -> None:
        self.rounds += 1
        self._unstored[namespace] = [self.rounds]  # type: ignore[list-item]


def test_spend_figures_are_stored_at_once_then_at_most_once_per_interval_and_the_last_ones_always(monkeypatch):
    stored: list[list[int]] = []
    monkeypatch.setattr(module, "budget_spend_record", lambda *, spends: stored.append(list(spends)))

    async def scenario() -> _Publisher:
        publisher = _Publisher(interval_s=0.01, store_interval_s=0.5)
        task = asyncio.create_task(publisher.run())
        try:
            await publisher.mark_dirty({"ns"})
            for _ in range(100):  # the first round's figures are stored without waiting for an interval
                await asyncio.sleep(0.01)
                if stored:
                    break
            assert stored == [[1]]
            loop = asyncio.get_running_loop()
            until = loop.time() + 1.5
            while loop.time() < until:  # usage flowing: a batch ingested every 20 ms
                await publisher.mark_dirty({"ns"})
                await asyncio.sleep(0.02)
            for _ in range(300):  # traffic stopped: the newest figures get stored
                await asyncio.sleep(0.01)
                if stored[-1] == [publisher.rounds]:
                    break
        finally:
            task.cancel()
        return publisher

    publisher = asyncio.run(scenario())
    assert stored[-1] == [publisher.rounds], "the last figures published were stored"
    assert publisher.rounds > 20, "the edges got a round per debounce interval"
    # 1.5 s of rounds at one store per 0.5 s, plus the first and the last: a store per round would be > 20
    assert len(stored) <= 6, f"{len(stored)} stores for {publisher.rounds} rounds"
