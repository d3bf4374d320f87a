"""A path or method the edge does not serve, asked by each stock SDK: the 404 / 405 in that SDK's error shape, so
its own exception class and fields say what happened (an Anthropic client's `messages.batches`, Google's `files`,
OpenAI's `files`), instead of OpenAI's shape for everyone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors

from .support import CLIENT_KEY, make_snapshot, run_edge


@pytest.fixture(scope="module")
def edge(mock_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with run_edge(make_snapshot(mock_upstream), tmp_path_factory.mktemp("edge")) as running:
        yield running


def test_an_anthropic_client_reads_anthropics_not_found(edge):
    client = anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.batches.list()
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "no route for GET /v1/messages/batches"},
    }


def test_a_google_client_reads_googles_not_found(edge):
    client = genai.Client(api_key=CLIENT_KEY, http_options={"base_url": edge.url})
    with pytest.raises(genai_errors.ClientError) as missing:
        list(client.files.list())
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"


def test_an_openai_client_reads_openais_not_found(edge):
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.list()
    assert missing.value.code == "route_not_found"


def test_a_method_a_route_does_not_take_is_a_405_in_the_callers_shape(edge):
    anthropic_style = httpx.delete(f"{edge.url}/v1/messages", headers={"anthropic-version": "2023-06-01"})
    assert anthropic_style.status_code == 405
    assert anthropic_style.json()["type"] == "error"
    assert anthropic_style.json()["error"]["type"] == "invalid_request_error"
    openai_style = httpx.get(f"{edge.url}/v1/chat/completions")
    assert openai_style.status_code == 405 and openai_style.json()["error"]["code"] == "method_not_allowed"
    google_style = httpx.put(f"{edge.url}/v1beta/models", headers={"x-goog-api-key": CLIENT_KEY})
    assert google_style.status_code == 405 and google_style.json()["error"]["code"] == 405
    assert google_style.json()["error"]["status"] == "UNIMPLEMENTED"  # as Google's gateways answer a wrong method
