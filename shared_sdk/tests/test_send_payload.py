"""`ctx.services.gateway.send_payload`: gated by `control.send`, limited to 1 MiB with a clear error, the same
in-process and isolated (the broker forwards it), from async and plain-`def` handlers, and recorded by the
testing kit as the studio half would receive it. The edge's spool-backed implementation is tested with real
NATS in tests/e2e/test_processes_payloads.py."""

from __future__ import annotations

import pytest

from shared_sdk import BasePlugin, DataCollector, ManifestProvider, PluginCallError, Runtime
from shared_sdk.messages import AnalyticsRecord, ManifestPermissions, PluginManifest
from shared_sdk.testing import PluginHarness

HERE = "shared_sdk.tests.test_send_payload"
BOTH = pytest.mark.parametrize("isolated", [False, True], ids=["inprocess", "isolated"])


class Reporter(BasePlugin, DataCollector, ManifestProvider):
    """Sends each analytics record's request id up; `size` (request id "big") sends 1 MiB + 1 byte instead."""

    name = "reporter"
    scopes = ["control.send"]

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(id="reporter", permissions=ManifestPermissions(services=list(self.scopes)))

    async def handle_analytics(self, ctx, record: AnalyticsRecord) -> None:
        body = b"x" * (1024 * 1024 + 1) if record.request_id == "big" else record.request_id.encode()
        cid = await ctx.services.gateway.send_payload(body, metadata={"kind": "request"})
        await ctx.services.kv.write(f"cid:{record.request_id}", cid.encode())


class SyncReporter(Reporter):
    name = "sync-reporter"

    def handle_analytics(  # type: ignore[override]  # a plain def on purpose: blocking twins of the services
        self, ctx, record: AnalyticsRecord
    ) -> None:
        cid = ctx.services.gateway.send_payload(record.request_id.encode(), correlation_id=f"c-{record.request_id}")
        ctx.services.kv.write(f"cid:{record.request_id}", cid.encode())


class UnscopedReporter(Reporter):
    name = "unscoped-reporter"
    scopes = ["kv.readwrite"]


@BOTH
async def test_payloads_are_recorded_as_the_studio_half_receives_them(isolated):
    async with PluginHarness(f"{HERE}:Reporter", isolated=isolated, slug="reporter") as h:
        await h.call("handle_analytics", AnalyticsRecord(request_id="r-1"))
        [sent] = h.payloads
        assert (sent.payload, sent.plugin_slug, sent.metadata) == (b"r-1", "reporter", {"kind": "request"})
        assert await h.services.kv.read("cid:r-1") == sent.correlation_id.encode() and sent.correlation_id
        assert not h.hub.sent, "a payload is not an event"

        with pytest.raises(PluginCallError) as err:
            await h.call("handle_analytics", AnalyticsRecord(request_id="big"))
        assert "limited to 1048576 bytes (1 MiB), got 1048577" in err.value.detail
        assert len(h.payloads) == 1


@BOTH
async def test_a_plain_def_handler_sends_with_its_own_correlation_id(isolated):
    async with PluginHarness(f"{HERE}:SyncReporter", isolated=isolated, slug="sync-reporter") as h:
        await h.call("handle_analytics", AnalyticsRecord(request_id="r-2"))
        assert [(p.payload, p.correlation_id) for p in h.payloads] == [(b"r-2", "c-r-2")]
        assert await h.services.kv.read("cid:r-2") == b"c-r-2"


@BOTH
async def test_sending_needs_the_control_send_scope(isolated):
    async with PluginHarness(f"{HERE}:UnscopedReporter", isolated=isolated, slug="unscoped-reporter") as h:
        with pytest.raises(PluginCallError) as err:
            await h.call("handle_analytics", AnalyticsRecord(request_id="r-3"))
        assert "control.send" in err.value.detail and "gateway.send_payload" in err.value.detail
        assert h.payloads == []
    async with PluginHarness(
        f"{HERE}:UnscopedReporter", slug="unscoped-reporter", extra_scopes=["events.publish"]
    ) as h:  # events.publish (UP and DOWN) includes what control.send allows
        await h.call("handle_analytics", AnalyticsRecord(request_id="r-4"))
        assert [p.payload for p in h.payloads] == [b"r-4"]


async def test_the_studio_runtime_has_no_gateway_to_send_through():
    async with PluginHarness(f"{HERE}:Reporter", runtime=Runtime.STUDIO, slug="reporter") as h:
        with pytest.raises(PluginCallError) as err:
            await h.call("handle_analytics", AnalyticsRecord(request_id="r-5"))
        assert "gateway" in err.value.detail


@BOTH
async def test_a_nul_in_the_correlation_id_is_refused_to_the_plugin(isolated):
    """The control plane stores the correlation id and metadata as PostgreSQL text, which cannot hold a NUL: the
    plugin learns at the call, not from a payload the control plane refuses later."""
    async with PluginHarness(f"{HERE}:SyncReporter", isolated=isolated, slug="sync-reporter") as h:
        with pytest.raises(PluginCallError) as err:
            await h.call("handle_analytics", AnalyticsRecord(request_id="r\x006"))
        assert "its correlation_id holds a NUL character" in err.value.detail
        assert h.payloads == []
