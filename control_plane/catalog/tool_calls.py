"""Run one tool call an LLM asked for: one HTTP request to the tool's OpenAPI server, bounded and contained.

The LLM chooses the arguments, so nothing it sends may widen where the request goes or what it carries: the URL
is the spec's server plus the operation's path with each path argument percent-encoded (a `/` or `?` in it cannot
leave the operation's path, and `.` or `..` alone is refused), and the result must still be on that server's scheme, host, port and base path;
only the declared query and header parameters are sent; redirects are never followed (a 3xx is reported, so a
tool's API cannot bounce the call to another host); the whole call is bounded by a timeout and the answer by a
size, read as it streams in. The tool's credential (`auth`) is added after the LLM's headers, so they cannot
replace it, and is cut out of whatever is shown or fed back, should the API echo it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from .tool_operations import ToolOperation

__all__ = ["ToolAuth", "ToolOutcome", "tool_auth", "tool_call_run"]

_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "authorization", "cookie"})


@dataclasses.dataclass(frozen=True, slots=True)
class ToolAuth:
    """The tool's credential as the request carries it: headers and query parameters, never shown."""

    headers: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)
    query: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)
    key: str = dataclasses.field(default="", repr=False)

    def secrets(self) -> list[str]:
        """Every form of the key a response might echo, longest first (so a header value goes before the key)."""
        values = {self.key, *self.headers.values(), *self.query.values()}
        return sorted((v for v in values if v), key=len, reverse=True)


def tool_auth(operation: ToolOperation, key: str) -> ToolAuth:
    """The request parts that carry the tool's `key` for this operation; nothing without a key."""
    if not key:
        return ToolAuth()
    place, name, scheme = operation.auth
    if scheme == "bearer":
        value = f"Bearer {key}"
    elif scheme == "basic":
        value = "Basic " + base64.b64encode(key.encode()).decode()
    else:
        value = key
    return ToolAuth(headers={name: value}, key=key) if place == "header" else ToolAuth(query={name: value}, key=key)


@dataclasses.dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What the call gave: `ok` is False for a refused call, a transport failure or an HTTP error status."""

    ok: bool
    text: str
    status: int | None = None


class _Refused(Exception):
    pass


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        raise _Refused("the arguments are not JSON") from None
    if not isinstance(value, dict):
        raise _Refused("the arguments are not a JSON object")
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _url(operation: ToolOperation, arguments: dict[str, Any]) -> str:
    path = operation.path
    for name in operation.path_params:
        if name not in arguments or arguments[name] is None:
            raise _Refused(f"the path parameter {name!r} is missing")
        value = quote(_scalar(arguments[name]), safe="")
        if value in ("", ".", ".."):  # a dot segment would walk up out of the operation's path
            raise _Refused(f"the path parameter {name!r} may not be {value!r}")
        path = path.replace("{" + name + "}", value)
    url = operation.server + path
    server, target = urlsplit(operation.server), urlsplit(url)
    same_origin = (target.scheme, target.hostname, target.port) == (server.scheme, server.hostname, server.port)
    if not same_origin or not target.path.startswith(server.path) or "{" in path:
        raise _Refused("the call would leave the tool's server")
    return url


def _request(operation: ToolOperation, arguments: dict[str, Any], auth: ToolAuth) -> dict[str, Any]:
    """httpx's request arguments; a declared parameter named like the credential's is never taken from the LLM."""
    params: list[tuple[str, str]] = []
    for name in operation.query_params:
        value = arguments.get(name)
        if value is None or name in auth.query:
            continue
        for item in value if isinstance(value, list) else [value]:
            params.append((name, _scalar(item)))
    params.extend(auth.query.items())
    headers = {"accept": "application/json, text/plain;q=0.9, */*;q=0.1"}
    reserved = _HOP_BY_HOP | {name.lower() for name in auth.headers}
    for name in operation.header_params:
        if arguments.get(name) is not None and name.lower() not in reserved:
            headers[name] = _scalar(arguments[name])
    headers.update(auth.headers)
    request: dict[str, Any] = {
        "method": operation.method,
        "url": _url(operation, arguments),
        "params": params,
        "headers": headers,
    }
    if operation.takes_body and arguments.get("body") is not None:
        request["json"] = arguments["body"]
    return request


async def _read(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """At most `max_bytes` of the body, and whether there was more (the rest is never read)."""
    body = bytearray()
    async for piece in response.aiter_bytes():
        body.extend(piece)
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False


def _redact(text: str, auth: ToolAuth) -> str:
    for secret in auth.secrets():
        text = text.replace(secret, "[redacted]")
    return text


async def tool_call_run(
    operation: ToolOperation,
    arguments: str,
    *,
    auth: ToolAuth | None = None,
    timeout_s: float,
    max_bytes: int,
) -> ToolOutcome:
    """Call the operation with the LLM's JSON arguments; every failure is an outcome, never an exception."""
    auth = auth or ToolAuth()
    try:
        request = _request(operation, _arguments(arguments), auth)
    except _Refused as exc:
        return ToolOutcome(ok=False, text=f"Refused: {exc}.")
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout_s) as client,
            client.stream(**request) as response,
        ):
            body, cut = await _read(response, max_bytes)
    except TimeoutError:
        return ToolOutcome(ok=False, text=f"Failed: no answer within {timeout_s:g} s.")
    except httpx.TimeoutException:
        return ToolOutcome(ok=False, text=f"Failed: no answer within {timeout_s:g} s.")
    except httpx.HTTPError as exc:
        return ToolOutcome(ok=False, text=_redact(f"Failed: {type(exc).__name__} calling the tool's server.", auth))
    text = body.decode("utf-8", errors="replace")
    if cut:
        text += f"\n[answer cut at {max_bytes} bytes]"
    status = response.status_code
    if response.is_redirect:
        return ToolOutcome(ok=False, text=f"HTTP {status}: redirects are not followed.", status=status)
    return ToolOutcome(ok=status < 400, text=_redact(f"HTTP {status}\n{text}", auth), status=status)
