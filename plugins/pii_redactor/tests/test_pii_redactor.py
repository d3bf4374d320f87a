import orjson

from plugins.pii_redactor import PIIRedactor
from shared_sdk import ResponseWriteRequest
from shared_sdk.testing import PluginHarness, make_request


async def test_request_messages_are_redacted() -> None:
    async with PluginHarness(PIIRedactor()) as h:
        out = await h.call("handle_post_auth", make_request("card 4111 1111 1111 1111, mail a.b@c.io"))
    text = orjson.loads(out.body)["messages"][0]["content"]
    assert "4111" not in text and "a.b@c.io" not in text and "[REDACTED:card]" in text


async def test_stream_redacts_values_split_across_chunks() -> None:
    pieces = ["write to ", "jane", ".doe@", "example", ".com please", ""]
    async with PluginHarness(PIIRedactor(), config={"stream_holdback_chars": 16}) as h:
        ctx = h.context(request_id="r1")
        sent = []
        for i, piece in enumerate(pieces):
            chunk = {
                "choices": [
                    {"index": 0, "delta": {"content": piece}, "finish_reason": "stop" if i == len(pieces) - 1 else None}
                ]
            }
            body = b"data: " + orjson.dumps(chunk) + b"\n\n"
            out = await h.call("on_before_write", ResponseWriteRequest(body=body, is_stream_chunk=True), ctx=ctx)
            sent.append(out.body if out.modified else body)
    text = "".join(orjson.loads(b[6:])["choices"][0]["delta"]["content"] for b in sent)
    assert text == "write to [REDACTED:email] please"


async def test_each_kind_is_redacted_and_text_without_pii_is_left_alone() -> None:
    async with PluginHarness(PIIRedactor(), config={"replacement": "<{kind}>"}) as h:
        plugin = h.plugin
        assert plugin.redact("no personal data here, just words.") == "no personal data here, just words."
        assert plugin.redact("ssn 078-05-1120 ok") == "ssn <ssn> ok"
        assert plugin.redact("call +44 20 7946 0958 now") == "call <phone> now"
        assert plugin.redact("mail ops@example.org") == "mail <email>"
        assert plugin.redact("order 12 shipped") == "order 12 shipped"


async def test_only_the_configured_kinds_are_redacted() -> None:
    async with PluginHarness(PIIRedactor(), config={"kinds": ["email"]}) as h:
        assert h.plugin.redact("a@b.io 078-05-1120") == "[REDACTED:email] 078-05-1120"
    async with PluginHarness(PIIRedactor(), config={"kinds": []}) as h:
        assert h.plugin.redact("a@b.io 078-05-1120") == "a@b.io 078-05-1120"
