"""Deployments of one model: their health on this edge (circuit breaker, requests in flight) and the balancer.

A model name maps to one or more LLMs (deployments) of an app, each with a `weight` and a `priority` (lower is
tried first). `DeploymentGroup.pick` balances over the healthy deployments of the best priority with nginx's
smooth weighted round-robin, which is deterministic and exact (weights 3:1 give exactly 3 of every 4 requests)
where a weighted random draw would only approach the split; a tie goes to the deployment with fewer requests in
flight on this edge. Why no lock: all of this runs on the edge's one event-loop thread, so plain integers do.

`DeploymentHealth` is one LLM's breaker, kept by `HealthBook` under the LLM's id so it outlives config applies:

    closed     --(`failures` failed calls in a row)-->           open until now + cool-down
    open       --(cool-down over; `pick` sends one request)-->   half-open (that request is the probe)
    half-open  --(probe answered)--> closed;   --(probe failed)--> open for another cool-down

A probe that never reports (refused before its upstream call, client gone) frees the slot after one more
cool-down, so a deployment cannot stay half-open for ever. A failed call is one the next deployment could fix
(a connect error, a timeout, 429, 5xx: `upstream_call.may_fall_back`); a vendor's other 4xx counts as answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from .compiled import CompiledLLM

__all__ = [
    "CLOSED",
    "DEFAULT_COOLDOWN_S",
    "DEFAULT_FAILURES",
    "HALF_OPEN",
    "OPEN",
    "DeploymentGroup",
    "DeploymentHealth",
    "DeploymentStates",
    "HealthBook",
    "open_breakers",
]

CLOSED, OPEN, HALF_OPEN = 0, 1, 2
"""Breaker states, also the values of `fjordgate_edge_deployment_state{llm}`."""
STATE_NAMES = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}
DEFAULT_FAILURES = 3
DEFAULT_COOLDOWN_S = 30.0


class DeploymentHealth:
    """One LLM's breaker and in-flight count on this edge (see the module docstring)."""

    __slots__ = ("failures", "cooldown_s", "streak", "state", "until", "inflight", "opened")

    def __init__(self, failures: int = DEFAULT_FAILURES, cooldown_s: float = DEFAULT_COOLDOWN_S) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.streak = 0
        """Failed calls in a row."""
        self.state = CLOSED
        self.until = 0.0
        """Open: the end of the cool-down. Half-open: when an unreported probe stops holding the slot."""
        self.inflight = 0
        """Upstream calls to this LLM in progress on this edge (the balancer's tie-break)."""
        self.opened = 0
        """How many times the breaker opened (for logs and tests)."""

    def available(self, now: float) -> bool:
        """Whether `pick` may send a request here now (closed, or due for a probe)."""
        return self.state == CLOSED or now >= self.until

    def claim(self, now: float) -> float:
        """`pick` chose this deployment: when its cool-down is over, the request is the half-open probe. Returns
        the probe's deadline (0.0: not a probe), which `release` takes."""
        if self.state == CLOSED:
            return 0.0
        self.state = HALF_OPEN
        self.until = now + self.cooldown_s
        return self.until

    def release(self, deadline: float) -> None:
        """The probe claimed with `deadline` ended without an upstream call (refused by auth, a plugin, policy):
        the next request may probe at once. Why: otherwise unauthenticated requests, routed before they are
        refused, could take every probe slot and keep a recovered deployment out."""
        if self.state == HALF_OPEN and self.until == deadline:
            self.state = OPEN
            self.until = 0.0

    def succeeded(self) -> None:
        self.streak = 0
        self.state = CLOSED

    def failed(self, now: float) -> bool:
        """Count a failed call; True when it (re)opened the breaker (the caller stops retrying here)."""
        self.streak += 1
        if self.state == CLOSED and self.streak < self.failures:
            return False
        if self.state != OPEN:
            self.opened += 1
        self.state = OPEN
        self.until = now + self.cooldown_s
        return True

    def state_at(self, now: float) -> int:
        """The state an operator sees: an open breaker whose cool-down is over is half-open (probe due)."""
        if self.state == OPEN and now >= self.until:
            return HALF_OPEN
        return self.state


class HealthBook:
    """Breakers by LLM id, so a config apply keeps each deployment's health and in-flight count."""

    def __init__(self, failures: int = DEFAULT_FAILURES, cooldown_s: float = DEFAULT_COOLDOWN_S) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._by_id: dict[int, DeploymentHealth] = {}

    def for_llm(self, llm_id: int, cooldown_s: float | None) -> DeploymentHealth:
        """The LLM's health object, its cool-down set from the LLM's own setting (None: the edge's default)."""
        health = self._by_id.get(llm_id)
        if health is None:
            health = self._by_id[llm_id] = DeploymentHealth(self.failures, self.cooldown_s)
        health.failures = self.failures
        health.cooldown_s = cooldown_s if cooldown_s is not None else self.cooldown_s
        return health

    def keep_only(self, llm_ids: set[int]) -> None:
        """Forget LLMs the new config no longer has."""
        for llm_id in [i for i in self._by_id if i not in llm_ids]:
            del self._by_id[llm_id]


IMPLICIT_RANK = 1000
"""Added to the priority of an LLM that serves a model only through the price list (empty allow-list, not its
default model): it ranks after every LLM naming the model, so it takes that model's traffic only when none of
them can (an LLM set up for another model does not silently get half of this one's requests)."""


class DeploymentGroup:
    """The LLMs serving one model name (id order), with the smooth weighted round-robin's current weights."""

    __slots__ = ("members", "ranks", "current", "probe")

    def __init__(self, members: Sequence[CompiledLLM], implicit: Sequence[bool] = ()) -> None:
        self.members = tuple(members)
        self.ranks = tuple(
            llm.config.priority + (IMPLICIT_RANK if i < len(implicit) and implicit[i] else 0)
            for i, llm in enumerate(self.members)
        )
        """Each member's priority (lower first), implicit members after every explicit one."""
        self.current = [0] * len(self.members)
        self.probe: tuple[DeploymentHealth, float] | None = None
        """Set by each `pick`: the health it made a half-open probe of and the probe's deadline, else None. Read
        at once by the caller (one event-loop thread: no other pick runs in between)."""

    def _eligible(self, llm: CompiledLLM, app_ids: frozenset[int] | None, exclude: Sequence[int]) -> bool:
        return (app_ids is None or llm.id in app_ids) and llm.id not in exclude

    def best_priority(
        self, app_ids: frozenset[int] | None, now: float, exclude: Sequence[int] = (), healthy_only: bool = True
    ) -> int | None:
        """The lowest priority among eligible deployments (available ones only when `healthy_only`)."""
        best: int | None = None
        for llm, rank in zip(self.members, self.ranks, strict=True):
            if (best is not None and rank >= best) or not self._eligible(llm, app_ids, exclude) or llm.unavailable:
                continue
            health = llm.health
            if healthy_only and health.state != CLOSED and now < health.until:
                continue
            best = rank
        return best

    def pick(
        self, app_ids: frozenset[int] | None, exclude: Sequence[int] = (), *, healthy_only: bool = False
    ) -> CompiledLLM | None:
        """The deployment for the next request of `app_ids`' app (None: any app), not in `exclude`.

        Among the available deployments of the best priority: smooth weighted round-robin, ties to the least
        busy. When none is available (every breaker open) and not `healthy_only`, the one whose cool-down ends
        first: a breaker never makes the edge refuse a request it could still try (fallbacks follow its error).
        """
        self.probe = None
        if len(self.members) == 1:
            return self._only(app_ids, exclude, healthy_only)
        now = time.monotonic()
        best = self.best_priority(app_ids, now, exclude)
        if best is None:
            return None if healthy_only else self._soonest(app_ids, exclude)
        chosen, total = -1, 0
        current, members = self.current, self.members
        for i, rank in enumerate(self.ranks):
            llm = members[i]
            health = llm.health
            if rank != best or (health.state != CLOSED and now < health.until) or llm.unavailable:
                continue
            if not self._eligible(llm, app_ids, exclude):
                continue
            weight = llm.config.weight
            current[i] += weight
            total += weight
            if (
                chosen < 0
                or current[i] > current[chosen]
                or (current[i] == current[chosen] and health.inflight < members[chosen].health.inflight)
            ):
                chosen = i
        current[chosen] -= total
        llm = self.members[chosen]
        deadline = llm.health.claim(now)
        if deadline:
            self.probe = (llm.health, deadline)
        return llm

    def _only(self, app_ids: frozenset[int] | None, exclude: Sequence[int], healthy_only: bool) -> CompiledLLM | None:
        """`pick` for a model with one deployment (the common case): no round-robin, no clock read when closed."""
        llm = self.members[0]
        if not self._eligible(llm, app_ids, exclude):
            return None
        health = llm.health
        if health.state == CLOSED:
            return llm
        now = time.monotonic()
        if health.available(now):
            deadline = health.claim(now)
            self.probe = (health, deadline)
            return llm
        return None if healthy_only else llm

    def _soonest(self, app_ids: frozenset[int] | None, exclude: Sequence[int]) -> CompiledLLM | None:
        found, key = None, (0, 0.0)
        for llm, rank in zip(self.members, self.ranks, strict=True):
            if not self._eligible(llm, app_ids, exclude):
                continue
            if found is None or (rank, llm.health.until) < key:
                found, key = llm, (rank, llm.health.until)
        return found


class DeploymentStates:
    """`fjordgate_edge_deployment_state{llm}` (0 closed, 1 open, 2 half-open), read at scrape time from the
    loaded config's LLMs: a prometheus_client collector, so the request path updates nothing for it."""

    def __init__(self, llms: Callable[[], Iterable[CompiledLLM]]) -> None:
        self._llms = llms
        """The current config's LLMs (an empty iterable before the first config)."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "fjordgate_edge_deployment_state",
            "Circuit breaker of each LLM on this edge: 0 closed, 1 open (cooling down), 2 half-open (probe due)",
            labels=["llm"],
        )
        now = time.monotonic()
        for llm in self._llms():
            family.add_metric([llm.slug], float(llm.health.state_at(now)))
        yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())


def open_breakers(llms: Iterable[CompiledLLM]) -> list[dict[str, object]]:
    """What `/ready` lists: each LLM whose breaker is not closed, with its state and the seconds left."""
    now = time.monotonic()
    out: list[dict[str, object]] = []
    for llm in llms:
        state = llm.health.state_at(now)
        if state != CLOSED:
            left = max(0.0, llm.health.until - now) if state == OPEN else 0.0
            out.append({"llm": llm.slug, "state": STATE_NAMES[state], "cooldown_left_s": round(left, 3)})
    return out
