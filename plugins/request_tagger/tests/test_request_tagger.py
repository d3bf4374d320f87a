from plugins.request_tagger import RequestTagger
from shared_sdk import App
from shared_sdk.testing import PluginHarness, make_request


async def test_tags_and_headers() -> None:
    async with PluginHarness(RequestTagger(), config={"tags": ["t1"], "headers": {"X-Team": "a"}}) as h:
        ctx = h.context(app=App(id=1, name="shop", tags=["prod"]))
        out = await h.call("handle_post_auth", make_request(), ctx=ctx)
    assert out.context_updates["request_tagger.tags"] == ["t1", "app:shop", "prod"]
    assert out.modified and out.request.headers["x-team"] == "a"
