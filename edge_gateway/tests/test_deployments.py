"""Deployments without a network: the breaker's transitions, the balancer's split and order, routing's forms.

The end-to-end behaviour (real mock upstreams, a real edge, one deployment dying mid-run) is in
`test_load_balancing.py`; these pin the rules those tests rely on.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from edge_gateway.config_store import ConfigStore
from edge_gateway.deployments import CLOSED, HALF_OPEN, OPEN, DeploymentHealth, HealthBook, open_breakers
from edge_gateway.errors import GatewayError
from edge_gateway.routing import resolve
from shared_sdk import Runtime
from shared_sdk.host import PluginHost

from .support import EDGE_SECRET, AppConfig, llm, make_snapshot


def test_breaker_opens_after_failures_in_a_row_and_a_success_resets_the_streak():
    h = DeploymentHealth(failures=3, cooldown_s=10)
    assert h.failed(100.0) is False
    assert h.failed(100.0) is False
    h.succeeded()  # the streak starts again
    assert h.failed(101.0) is False
    assert h.failed(101.0) is False
    assert (h.state, h.available(101.0)) == (CLOSED, True)
    assert h.failed(102.0) is True
    assert h.state == OPEN and h.until == 112.0 and h.opened == 1
    assert not h.available(111.9)
    assert h.state_at(111.9) == OPEN and h.state_at(112.0) == HALF_OPEN  # what /metrics and /ready show


def test_half_open_probe_closes_on_success_and_reopens_on_failure():
    h = DeploymentHealth(failures=1, cooldown_s=5)
    h.failed(0.0)
    assert h.available(5.0)
    h.claim(5.0)  # the balancer sent the probe
    assert h.state == HALF_OPEN and not h.available(6.0), "one probe at a time"
    h.failed(6.0)
    assert h.state == OPEN and h.until == 11.0 and h.opened == 2
    h.claim(11.0)
    h.succeeded()
    assert h.state == CLOSED and h.available(11.0) and h.streak == 0


def test_a_probe_that_never_reports_frees_the_slot_after_a_cool_down():
    h = DeploymentHealth(failures=1, cooldown_s=5)
    h.failed(0.0)
    h.claim(5.0)  # e.g. the request was refused by a plugin before its upstream call
    assert not h.available(9.9)
    assert h.available(10.0)


def test_health_book_keeps_state_across_configs_and_applies_the_llm_cool_down():
    book = HealthBook(failures=2, cooldown_s=30)
    first = book.for_llm(1, None)
    first.failed(0.0)
    again = book.for_llm(1, 4.0)
    assert again is first and again.streak == 1 and again.cooldown_s == 4.0
    assert book.for_llm(1, None).cooldown_s == 30
    book.keep_only({2})
    assert book.for_llm(1, None) is not first


async def _compiled(llms, app_llm_ids=None):
    snap = make_snapshot(
        "http://127.0.0.1:9",
        llms=llms,
        apps=[AppConfig(id=1, name="a", llm_ids=app_llm_ids or [x.id for x in llms])],
    )
    store = ConfigStore(
        host=PluginHost(Runtime.GATEWAY, lambda slug: None), edge_secret=EDGE_SECRET, breaker_failures=1
    )
    return await store.apply(snap)


def _deployments(*specs):
    return [
        llm(i, f"dep-{i}", "http://127.0.0.1:9/v1", default_model="", allowed_models=["gpt-x"], **kw)
        for i, kw in enumerate(specs, start=1)
    ]


def test_weights_split_exactly_and_smoothly():
    cfg = asyncio.run(_compiled(_deployments({"weight": 3}, {"weight": 1})))
    app = cfg.apps[1]
    picks = [resolve(cfg, "gpt-x", app)[0].slug for _ in range(400)]
    assert picks.count("dep-1") == 300 and picks.count("dep-2") == 100
    # smooth: the light deployment is never starved for long (nginx's sequence a a b a, not a a a b)
    assert picks[:4] == ["dep-1", "dep-1", "dep-2", "dep-1"]


def test_priority_orders_and_open_breakers_move_traffic_down():
    cfg = asyncio.run(_compiled(_deployments({"priority": 0}, {"priority": 5}, {"priority": 5, "weight": 2})))
    app = cfg.apps[1]
    assert {resolve(cfg, "gpt-x", app)[0].slug for _ in range(10)} == {"dep-1"}
    cfg.llms_by_slug["dep-1"].health.failed(time.monotonic())  # breaker_failures=1: open now
    picks = [resolve(cfg, "gpt-x", app)[0].slug for _ in range(30)]
    assert picks.count("dep-2") == 10 and picks.count("dep-3") == 20
    assert open_breakers(cfg.llms_by_id.values())[0]["llm"] == "dep-1"


def test_ties_go_to_the_least_busy_deployment():
    cfg = asyncio.run(_compiled(_deployments({}, {})))
    app = cfg.apps[1]
    cfg.llms_by_slug["dep-1"].health.inflight = 4
    assert resolve(cfg, "gpt-x", app)[0].slug == "dep-2"


def test_every_breaker_open_still_routes_and_pins_ignore_balancing():
    cfg = asyncio.run(_compiled(_deployments({}, {})))
    app = cfg.apps[1]
    now = time.monotonic()
    cfg.llms_by_slug["dep-1"].health.failed(now)
    cfg.llms_by_slug["dep-2"].health.failed(now + 1)
    llm_, model, group = resolve(cfg, "gpt-x", app)
    assert llm_.slug == "dep-1" and group is not None, "the one whose cool-down ends first, not an error"
    assert resolve(cfg, "dep-2/gpt-x", app)[0].slug == "dep-2"
    assert resolve(cfg, "dep-2/gpt-x", app)[2] is None


def test_only_the_apps_deployments_are_balanced_and_unknown_models_are_404():
    cfg = asyncio.run(_compiled(_deployments({"weight": 9}, {}), app_llm_ids=[2]))
    app = cfg.apps[1]
    assert {resolve(cfg, "gpt-x", app)[0].slug for _ in range(5)} == {"dep-2"}
    with pytest.raises(GatewayError) as err:
        resolve(cfg, "no-such-model", app)
    assert err.value.status_code == 404


def test_pattern_deployments_are_balanced_with_a_bounded_cache():
    llms = [
        llm(i, f"rx-{i}", "http://127.0.0.1:9/v1", default_model="", allowed_models=["gpt-.*"], weight=w)
        for i, w in ((1, 1), (2, 3))
    ]
    cfg = asyncio.run(_compiled(llms))
    app = cfg.apps[1]
    picks = [resolve(cfg, f"gpt-{n % 7}", app)[0].slug for n in range(40)]
    assert picks.count("rx-2") == 30
    assert len(cfg.pattern_groups) == 1, "keyed by the matching LLMs, not by the client's model name"


def test_an_llm_serving_a_model_only_through_the_price_list_ranks_after_those_naming_it():
    named = llm(1, "named", "http://127.0.0.1:9/v1", default_model="mock-gpt", allowed_models=["mock-gpt"])
    other = llm(2, "other", "http://127.0.0.1:9/v1", default_model="flaky-gpt")  # empty allow-list: priced models too
    cfg = asyncio.run(_compiled([named, other]))
    app = cfg.apps[1]
    assert {resolve(cfg, "mock-gpt", app)[0].slug for _ in range(6)} == {"named"}
    cfg.llms_by_slug["named"].health.failed(time.monotonic())  # breaker open: the price-list LLM may take it
    assert resolve(cfg, "mock-gpt", app)[0].slug == "other"


def test_a_probe_refused_before_its_call_is_released_for_the_next_request():
    cfg = asyncio.run(_compiled(_deployments({}, {})))
    app = cfg.apps[1]
    health = cfg.llms_by_slug["dep-1"].health
    health.cooldown_s = 0.0
    health.failed(time.monotonic())  # breaker_failures=1: open, and due at once (cool-down 0)
    group = cfg.exact_models["gpt-x"]
    assert resolve(cfg, "gpt-x", app)[0].slug == "dep-1" and health.state == HALF_OPEN
    probe = group.probe
    assert probe is not None and probe[0] is health
    health.cooldown_s = 60.0  # a long cool-down: only a release makes it due again
    health.release(probe[1])  # e.g. the caller's key was wrong: no upstream call happened
    assert health.state == OPEN and health.available(time.monotonic())
    deadline = health.claim(time.monotonic())  # the next probe
    health.release(probe[1])  # the first probe's deadline, stale now: changes nothing
    assert health.state == HALF_OPEN and health.until == deadline
