"""What an isolated plugin's process sends back is checked on the host's side of the wire too.

The plugin process checks its plugin's results (it drives the plugin with the host's own `InProcessHandle`), but a
process built with another SDK version, or a program of its own, may send what its side let through. Before, a
header value that was an int failed decoding in the host, outside any plugin call's failure: the edge answered 500
"internal error in the edge gateway", naming no plugin and ignoring its failure policy; a header name holding CR LF
decoded and went on. Both are now the plugin's `PluginCallError(kind="exception")`, naming the method and field."""

from __future__ import annotations

import sys
import textwrap

import pytest

from shared_sdk import PluginCallError, ResponseWriteRequest, Runtime
from shared_sdk.host import PluginHost, PluginSpec
from shared_sdk.testing import make_context, make_request, make_services

UNCHECKED = """
import shared_sdk
from shared_sdk import BasePlugin, EnrichedRequest, PluginResponse, ResponseWriteResponse
from shared_sdk.methods import METHODS

for spec in METHODS.values():  # as a plugin process built before the result checks
    object.__setattr__(spec, "check", None)


class Unchecked(BasePlugin):
    name = "unchecked"

    async def handle_post_auth(self, ctx, req):
        return PluginResponse(modified=True, request=EnrichedRequest(headers={"x-a\\r\\nx-injected": "2"}))

    async def on_before_write_headers(self, ctx, req):
        return ResponseWriteResponse(modified=True, headers={"x-count": 3})

    async def on_before_write(self, ctx, req):
        return ResponseWriteResponse(modified=True, status_code="451")


if __name__ == "__main__":
    shared_sdk.serve(Unchecked())
"""


@pytest.mark.parametrize(
    ("method", "arg", "detail"),
    [
        (
            "handle_post_auth",
            make_request("hi"),
            "handle_post_auth returned PluginResponse.request: EnrichedRequest.headers: the name 'x-a\\r\\nx-injected' holds",
        ),
        ("on_before_write_headers", None, "on_before_write_headers returned a result its type cannot hold"),
        ("on_before_write", None, "on_before_write returned a result its type cannot hold"),
    ],
)
async def test_a_result_the_plugin_process_let_through_is_the_plugins_failure(tmp_path, method, arg, detail):
    script = tmp_path / "unchecked.py"
    script.write_text(textwrap.dedent(UNCHECKED))
    host = PluginHost(Runtime.GATEWAY, lambda slug: make_services(Runtime.GATEWAY, slug))
    handle = await host.load(
        PluginSpec(slug="unchecked", command=[sys.executable, str(script)], failure_policy="closed")
    )
    try:
        with pytest.raises(PluginCallError) as failed:
            await handle.call(method, make_context(), arg if arg is not None else ResponseWriteRequest(body=b"{}"))
    finally:
        await host.aclose()
    err = failed.value
    assert (err.slug, err.method, err.kind, err.fail_open) == ("unchecked", method, "exception", False)
    assert detail in err.detail
