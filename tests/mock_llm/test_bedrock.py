"""The Bedrock Converse surface of the mock, driven by botocore itself: SigV4 signatures are verified (a wrong
secret, a stale date or a body changed after signing is 403), errors carry `x-amzn-ErrorType`, and streams are
event-stream frames botocore decodes with their CRCs."""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock as patch

import httpx
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

from fjordgate.mock_llm.settings import DEFAULT_AWS_CREDENTIALS

from .conftest import MockServer

KEY_ID, SECRET = DEFAULT_AWS_CREDENTIALS.split(":")
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
BODY = {"messages": [{"role": "user", "content": [{"text": "Hello, Bedrock!"}]}], "inferenceConfig": {"maxTokens": 50}}


def _signed(mock: MockServer, path: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    request = AWSRequest(method="POST", url=mock.url + path, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(KEY_ID, secret), "bedrock", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def _post(
    mock: MockServer, operation: str, body: dict[str, Any] | None = None, model: str = MODEL, **sign: Any
) -> httpx.Response:
    path = f"/model/{model.replace(':', '%3A')}/{operation}"
    raw = orjson.dumps(body or BODY)
    return httpx.post(mock.url + path, content=raw, headers=_signed(mock, path, raw, **sign), timeout=10)


def test_converse_answers_in_converse_shape(mock: MockServer) -> None:
    reply = _post(mock, "converse")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["output"]["message"] == {"role": "assistant", "content": [{"text": "Echo: Hello, Bedrock!"}]}
    assert body["stopReason"] == "end_turn"
    assert body["usage"] == {"inputTokens": 4, "outputTokens": 6, "totalTokens": 10}


def test_the_stream_is_event_stream_frames(mock: MockServer) -> None:
    reply = _post(mock, "converse-stream")
    assert reply.headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(reply.content)
    events = [(m.headers[":event-type"], orjson.loads(m.payload)) for m in buffer]
    names = [name for name, _ in events]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
    text = "".join(p["delta"]["text"] for n, p in events if n == "contentBlockDelta")
    assert text == "Echo: Hello, Bedrock!"
    assert events[-1][1]["usage"]["outputTokens"] == 6


def test_the_stop_sequence_is_named_where_claude_on_bedrock_names_it(mock: MockServer) -> None:
    """`additionalModelResponseFieldPaths` point into Claude's own answer: its message for `converse`
    (`/stop_sequence`), its last stream event, `message_delta`, for `converse-stream` (`/delta/stop_sequence`, in
    `messageStop`); a path not found there is left out, and nothing is added unasked."""
    body = {**BODY, "inferenceConfig": {"maxTokens": 50, "stopSequences": ["###", "Bed"]}}
    both = {**body, "additionalModelResponseFieldPaths": ["/stop_sequence", "/delta/stop_sequence"]}
    full = _post(mock, "converse", both).json()
    assert full["stopReason"] == "stop_sequence" and full["output"]["message"]["content"] == [{"text": "Echo: Hello, "}]
    assert full["additionalModelResponseFields"] == {"stop_sequence": "Bed"}
    assert "additionalModelResponseFields" not in _post(mock, "converse", body).json()

    def stop_event(asked: dict[str, Any]) -> dict[str, Any]:
        buffer = EventStreamBuffer()
        buffer.add_data(_post(mock, "converse-stream", asked).content)
        (stop,) = [orjson.loads(m.payload) for m in buffer if m.headers[":event-type"] == "messageStop"]
        return stop

    assert stop_event(both) == {
        "stopReason": "stop_sequence",
        "additionalModelResponseFields": {"delta": {"stop_sequence": "Bed"}},
    }
    assert stop_event({**body, "additionalModelResponseFieldPaths": ["/stop_sequence"]}) == {
        "stopReason": "stop_sequence"
    }


def test_a_nova_model_keeps_the_stop_sequence_at_the_end_of_its_text(mock: MockServer) -> None:
    """Amazon Nova ends its text with the sequence it stopped on (others cut before it), full and streamed."""
    body = {**BODY, "inferenceConfig": {"maxTokens": 50, "stopSequences": ["###", "Bed"]}}
    full = _post(mock, "converse", body, model="us.amazon.nova-lite-v1:0").json()
    assert full["stopReason"] == "stop_sequence" and full["output"]["message"]["content"] == [
        {"text": "Echo: Hello, Bed"}
    ]
    buffer = EventStreamBuffer()
    buffer.add_data(_post(mock, "converse-stream", body, model="us.amazon.nova-lite-v1:0").content)
    events = [(m.headers[":event-type"], orjson.loads(m.payload)) for m in buffer]
    assert "".join(p["delta"]["text"] for n, p in events if n == "contentBlockDelta") == "Echo: Hello, Bed"
    assert _post(mock, "converse", body).json()["output"]["message"]["content"] == [{"text": "Echo: Hello, "}]


def test_a_wrong_secret_or_a_changed_body_is_refused(mock: MockServer) -> None:
    wrong = _post(mock, "converse", secret="not-it")
    assert wrong.status_code == 403 and "signature" in wrong.json()["message"]
    assert wrong.headers["x-amzn-errortype"].startswith("AccessDeniedException")
    path = f"/model/{MODEL}/converse"
    headers = _signed(mock, path, orjson.dumps(BODY))
    tampered = httpx.post(mock.url + path, content=orjson.dumps({**BODY, "x": 1}), headers=headers)
    assert tampered.status_code == 403
    unsigned = httpx.post(mock.url + path, json=BODY)
    assert unsigned.status_code == 403 and unsigned.json() == {"message": "Missing Authentication Token"}


def test_a_stale_signature_is_refused(mock: MockServer) -> None:
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=10)
    with patch.patch("botocore.auth.get_current_datetime", return_value=old):
        stale = _post(mock, "converse")
    assert stale.status_code == 403 and "expired" in stale.json()["message"]


def test_validation_and_injected_errors_name_their_exception(mock: MockServer) -> None:
    alternating = {"messages": [{"role": "assistant", "content": [{"text": "first"}]}]}
    invalid = _post(mock, "converse", alternating)
    assert invalid.status_code == 400 and invalid.headers["x-amzn-errortype"].startswith("ValidationException")
    path = f"/model/{MODEL}/converse"
    raw = orjson.dumps({**BODY, "mock": {"status": 429}})
    throttled = httpx.post(mock.url + path, content=raw, headers=_signed(mock, path, raw))
    assert throttled.status_code == 429
    assert throttled.headers["x-amzn-errortype"].startswith("ThrottlingException")


def test_values_beyond_converses_bounds_are_a_validation_exception(mock: MockServer) -> None:
    """Converse's `inferenceConfig` bounds, for every model: `temperature` and `topP` 0 to 1, at most 2500
    `stopSequences`; beyond them AWS answers 400 ValidationException naming the field."""
    for config, field in (
        ({"temperature": 2}, "inferenceConfig.temperature"),
        ({"topP": 1.5}, "inferenceConfig.topP"),
        ({"stopSequences": [f"s{i}" for i in range(2501)]}, "inferenceConfig.stopSequences"),
    ):
        reply = _post(mock, "converse", {**BODY, "inferenceConfig": {"maxTokens": 50, **config}})
        assert reply.status_code == 400, config
        assert reply.headers["x-amzn-errortype"].startswith("ValidationException")
        assert f"at '{field}' failed to satisfy constraint" in reply.json()["message"]
    within = {"maxTokens": 50, "temperature": 1, "topP": 1, "stopSequences": [f"s{i}" for i in range(2500)]}
    assert _post(mock, "converse", {**BODY, "inferenceConfig": within}).status_code == 200
