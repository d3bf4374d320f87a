"""What the call table makes of a plugin's return value (`MethodSpec.normalize`)."""

from __future__ import annotations

from http import HTTPStatus

import msgspec
import pytest

from shared_sdk.messages import (
    Asset,
    DataCollectionResponse,
    EnrichedRequest,
    PluginError,
    PluginResponse,
    ResponseWriteResponse,
    ShortCircuit,
    UpstreamResponse,
)
from shared_sdk.methods import METHODS, ResultTypeError


def test_an_optional_result_of_exactly_its_type_is_returned_without_conversion(monkeypatch):
    """The hot path of every data collector (`handle_analytics` returns `DataCollectionResponse | None`):
    `msgspec.convert` on the union costs ~15,000 instructions a call, for an object already right."""

    def refuse(*args, **kwargs):
        raise AssertionError("msgspec.convert called for a value already of the declared type")

    monkeypatch.setattr(msgspec, "convert", refuse)
    reply = DataCollectionResponse(success=False, error_message="kept")
    assert METHODS["handle_analytics"].normalize(reply) is reply
    assert METHODS["handle_analytics"].normalize(None) is None


def test_an_optional_result_still_converts_and_refuses_what_is_not_its_type():
    spec = METHODS["get_asset"]
    assert spec.normalize((b"x", "text/plain")) == Asset(content=b"x", content_type="text/plain")
    converted = METHODS["handle_analytics"].normalize({"success": False, "error_message": "from a dict"})
    assert converted == DataCollectionResponse(success=False, error_message="from a dict")
    with pytest.raises(ResultTypeError, match="handle_analytics returned int"):
        METHODS["handle_analytics"].normalize(3)


def test_another_sdk_message_is_refused_with_what_to_return_instead():
    """`return req` from a request hook used to become `PluginResponse(headers=req.headers, body=req.body)`:
    `modified=False`, so the plugin's change was dropped and nothing said so."""
    with pytest.raises(
        ResultTypeError, match=r"returned EnrichedRequest.*PluginResponse\(modified=True, request=req\)"
    ):
        METHODS["handle_post_auth"].normalize(EnrichedRequest(headers={"x-team": "blue"}))
    with pytest.raises(ResultTypeError, match="on_before_write returned UpstreamResponse"):
        METHODS["on_before_write"].normalize(UpstreamResponse(body=b"{}"))
    assert METHODS["handle_post_auth"].normalize({"block": True}) == PluginResponse(block=True)  # dicts still convert


def test_a_struct_of_the_right_type_with_a_wrong_field_is_refused_naming_the_field():
    """A Struct's constructor checks nothing: `PluginResponse(body="text")` reached the edge, which failed writing
    it (a dropped connection), naming no plugin."""
    spec = METHODS["handle_post_auth"]
    with pytest.raises(ResultTypeError, match=r"PluginResponse\.body is str, expected bytes"):
        spec.normalize(PluginResponse(block=True, body="slow down"))
    with pytest.raises(ResultTypeError, match=r"PluginResponse\.request: EnrichedRequest\.body is NoneType"):
        spec.normalize(PluginResponse(modified=True, request=EnrichedRequest(body=None)))
    with pytest.raises(ResultTypeError, match=r"status_code is str, expected int"):
        spec.normalize(PluginResponse(block=True, status_code="451"))
    fine = PluginResponse(block=True, status_code=HTTPStatus.TOO_MANY_REQUESTS, body=b"slow down")
    assert spec.normalize(fine) is fine  # an IntEnum status is an int
    answer = ShortCircuit(response=UpstreamResponse(status_code=200, body="cached"))
    with pytest.raises(ResultTypeError, match=r"short_circuit: ShortCircuit\.response: UpstreamResponse\.body is str"):
        spec.normalize(PluginResponse(short_circuit=answer))
    deep = PluginResponse(short_circuit=ShortCircuit(error=PluginError(status_code=HTTPStatus.FORBIDDEN)))
    assert spec.normalize(deep) is deep  # nested messages are checked as deep as they go, subclasses let through
    assert METHODS["on_before_write"].normalize(ResponseWriteResponse(modified=True)) == ResponseWriteResponse(
        modified=True
    )
