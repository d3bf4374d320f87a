"""Prompts are kept per user (the user the host passes), shared prompts come from config, bad input is explained."""

from __future__ import annotations

import json
from typing import Any

from plugins.prompt_library.plugin import PromptLibrary
from shared_sdk.messages import PortalUserContext
from shared_sdk.testing import PluginHarness

ANN = PortalUserContext(user_id=1, name="Ann")
BOB = PortalUserContext(user_id=2, name="Bob")
SHARED = {"shared": [{"title": "Summarise", "text": "Summarise in three bullet points."}]}


async def _rpc(h: PluginHarness, user: PortalUserContext, method: str, body: object = None) -> dict[str, Any]:
    payload = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    answer: dict[str, Any] = json.loads(await h.call("handle_portal_rpc", user, method, payload))
    return answer


async def test_each_user_sees_own_prompts_and_the_shared_ones() -> None:
    async with PluginHarness(PromptLibrary(), runtime="studio", config=SHARED) as h:
        saved = await _rpc(h, ANN, "save", {"title": "Tone", "text": "Answer kindly."})
        assert saved["prompt"]["title"] == "Tone"
        ann = await _rpc(h, ANN, "list")
        assert [p["title"] for p in ann["mine"]] == ["Tone"] and ann["shared"] == SHARED["shared"]
        assert (await _rpc(h, BOB, "list"))["mine"] == []
        assert (await _rpc(h, BOB, "delete", {"id": saved["prompt"]["id"]}))["deleted"] is False
        assert (await _rpc(h, ANN, "delete", {"id": saved["prompt"]["id"]}))["deleted"] is True
        assert (await _rpc(h, ANN, "list"))["mine"] == []


async def test_bad_input_gets_a_clear_error() -> None:
    async with PluginHarness(PromptLibrary(), runtime="studio") as h:
        assert "title and a text" in (await _rpc(h, ANN, "save", {"title": ""}))["error"]
        assert "not JSON" in (await _rpc(h, ANN, "save", b"{oops"))["error"]
        assert "under" in (await _rpc(h, ANN, "save", {"title": "x", "text": "y" * 9000}))["error"]
        assert "Sign in" in (await _rpc(h, PortalUserContext(), "list"))["error"]


async def test_a_body_that_is_no_object_or_nests_too_deep_is_explained() -> None:
    async with PluginHarness(PromptLibrary(), runtime="studio") as h:
        for body in (b"[]", b"null", b"0", b'""'):
            assert (await _rpc(h, ANN, "save", body))["error"] == "Send a JSON object.", body
        deep = await _rpc(h, ANN, "save", b"[" * 10_000 + b"]" * 10_000)
        assert "nests too deeply" in deep["error"]
        assert (await _rpc(h, ANN, "list"))["mine"] == []
