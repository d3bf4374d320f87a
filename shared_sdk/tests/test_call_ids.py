"""An isolated plugin's service calls see the caller's carried context variables only through the host's call ids:
while the call they serve runs, and never from an id the plugin made up (`shared_sdk.isolated.calls`)."""

from __future__ import annotations

import asyncio
import contextvars

from shared_sdk import Runtime
from shared_sdk.host import PluginHost, PluginSpec
from shared_sdk.testing import InMemoryKV, make_request, make_services

SAMPLES = "shared_sdk.tests.sample_plugins"

caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("test_caller", default=None)


class WhoseKV(InMemoryKV):
    """Notes, per key written, the `caller` the service call ran for."""

    def __init__(self) -> None:
        super().__init__()
        self.whose: dict[str, str | None] = {}

    async def write(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.whose[key] = caller.get()
        await super().write(key, value, ttl_s)


async def _settled(kv: WhoseKV, keys: set[str]) -> dict[str, str | None]:
    for _ in range(200):
        if keys <= kv.whose.keys():
            break
        await asyncio.sleep(0.02)
    return dict(kv.whose)


async def test_service_calls_see_the_callers_values_only_for_the_live_call_they_serve():
    kv = WhoseKV()
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug, kv=kv), carried=(caller,))
    token = caller.set("alice")  # the plugin is started while a caller is set: none of it may stay with the process
    try:
        handle = await host.load(PluginSpec(slug="probe", import_path=f"{SAMPLES}:CallerProbe", isolated=True))
        await handle.call("handle_post_auth", None, make_request("x"))
        await handle.call("handle_pre_auth", None, make_request("x"))
        assert await _settled(kv, {"async", "forged", "sync", "late"}) == {
            "async": "alice",
            "sync": "alice",  # a plain-def handler's worker thread carries the call id too
            "forged": None,  # an id the host never gave
            "late": None,  # the call's own id, once the call is over
        }
        caller.set("bob")
        kv.whose.clear()
        await handle.call("handle_post_auth", None, make_request("x"))
        assert (await _settled(kv, {"async", "late"}))["async"] == "bob"
    finally:
        caller.reset(token)
    kv.whose.clear()
    await handle.call("handle_post_auth", None, make_request("x"))  # a caller with nothing set: the plugin's own
    assert (await _settled(kv, {"async", "late"}))["async"] is None
    assert len(handle.calls) == 0  # every call id was dropped with its call
    await host.aclose()
