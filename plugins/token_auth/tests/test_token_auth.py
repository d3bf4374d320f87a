from plugins.token_auth import TokenAuth
from shared_sdk import App, AuthRequest
from shared_sdk.testing import InMemoryGateway, PluginHarness, make_services


async def test_tokens_are_stored_hashed_and_resolve_to_their_app() -> None:
    services = make_services("gateway", "token-auth")
    services._gateway = InMemoryGateway(apps=[App(id=1, name="one")])
    config = {"tokens": [{"token": "tok-12345678", "app_id": 1, "user_id": 3}]}
    async with PluginHarness(TokenAuth(), config=config, services=services) as h:
        ok = await h.call("handle_auth", AuthRequest(credential="tok-12345678"))
        bad = await h.call("handle_auth", AuthRequest(credential="tok-nope-0000"))
        app = await h.call("get_app_by_credential", "tok-12345678")
        keys = await services.kv.list("")
    assert ok.authenticated and ok.app_id == 1 and ok.user_id == 3
    assert not bad.authenticated and app.id == 1
    assert all("tok-12345678" not in key for key in keys)
