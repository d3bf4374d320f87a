import orjson

from plugins.request_logger import RequestLogger
from shared_sdk import AnalyticsRecord, App, EndpointRequest
from shared_sdk.testing import PluginHarness


async def test_logs_and_lists_newest_first_per_app() -> None:
    async with PluginHarness(RequestLogger()) as h:
        for i in range(3):
            await h.call("handle_analytics", AnalyticsRecord(request_id=f"r{i}", app_id=1, timestamp=100.0 + i))
        await h.call("handle_analytics", AnalyticsRecord(request_id="other", app_id=2, timestamp=200.0))
        out = await h.call("handle_endpoint_request", EndpointRequest(query_string="limit=2", app=App(id=1)))
    assert [e["request_id"] for e in orjson.loads(out.body)["data"]] == ["r2", "r1"]
