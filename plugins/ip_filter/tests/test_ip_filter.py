import msgspec
import pytest

from plugins.ip_filter import IPFilter
from shared_sdk.errors import PluginConfigError
from shared_sdk.testing import PluginHarness, make_request


async def test_deny_wins_and_allow_list_restricts() -> None:
    async with PluginHarness(IPFilter(), config={"allow": ["10.0.0.0/8"], "deny": ["10.0.0.5"]}) as h:
        ok = await h.call("handle_pre_auth", msgspec.structs.replace(make_request(), remote_addr="10.1.2.3"))
        denied = await h.call("handle_pre_auth", msgspec.structs.replace(make_request(), remote_addr="10.0.0.5"))
        outside = await h.call("handle_pre_auth", msgspec.structs.replace(make_request(), remote_addr="8.8.8.8"))
    assert not ok.block and denied.block and outside.block and outside.status_code == 403


async def test_bad_config_is_rejected_at_load() -> None:
    with pytest.raises(PluginConfigError):
        async with PluginHarness(IPFilter(), config={"allow": "everyone"}):
            pass
