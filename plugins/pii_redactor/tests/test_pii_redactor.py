import orjson

from plugins.pii_redactor import PIIRedactor
from shared_sdk import ResponseWriteRequest
from shared_sdk.testing import PluginHarness, make_request


async def test_request_messages_are_redacted():
    async with PluginHarness(PIIRedactor()) as h:
        out = await h.call("handle_post_auth", make_request("card 4111 1111 1111 1111, mail a.b@c.io"))
    text = orjson.loads(out.body)["messages"][0]["content"]
    assert "4111" not in text and "a.b@c.io" not in text and "[REDACTED:card]" in text


async def test_stream_redacts_values_split_across_chunks():
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
