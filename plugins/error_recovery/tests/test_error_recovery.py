from plugins.error_recovery import ErrorRecovery
from shared_sdk import PluginError, ResponseWriteRequest
from shared_sdk.testing import PluginHarness


async def test_recovers_listed_statuses_only() -> None:
    async with PluginHarness(ErrorRecovery(), config={"message": "sorry"}) as h:
        out = await h.call("on_before_write", ResponseWriteRequest(status_code=502, error=PluginError(status_code=502)))
        kept = await h.call(
            "on_before_write", ResponseWriteRequest(status_code=429, error=PluginError(status_code=429))
        )
    assert out.modified and out.status_code == 200 and b"sorry" in out.body
    assert not kept.modified
