"""Field checks for a result a plugin built itself: a msgspec Struct's constructor does not check its fields.

`PluginResponse(block=True, body="slow down")` is a `PluginResponse` whose `body` is a `str`. The call table
returns a result of exactly its declared type as it is (`MethodSpec.normalize`, the hot path), so the wrong field
went on to the edge, which failed writing it: in process, the client's connection dropped mid-response; isolated,
the wire refused it, a 500 "internal error in the edge gateway". Neither named the plugin nor applied its failure
policy. The checker made here tests the fields with `type(...) is` in one expression compiled per message type (no
conversion, no allocation), nested messages (`request`, `short_circuit.response`, `error`) included; when that
fails it walks them again to name the first field that is wrong, so the call fails like any wrong return type:
`PluginCallError(kind="exception")`.

Headers (`headers`, `stream_headers`) are checked the same way: `{"x-count": 3}` went into the request sent upstream
(which failed on it: a 500) or the response (dropped, a list raised: a 500), and isolated it failed decoding on the
host's side of the wire (a 500), each naming no plugin. A name must be non-empty text without CR, LF, NUL or ':' (such
a name is no header in any HTTP version: it would start a header of its own or hide one in its name); a value must be
text. What a value holds is the edge's to judge, per header (`edge_gateway.response_headers` drops one holding CR or
LF and keeps the plugin's other headers; the upstream call refuses to send one). The check runs in C: a `str.join`
over the names and one over the values (a `TypeError` for anything but text) and four `in` scans of the names.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["DEFAULT_BODY_LIMIT", "body_limit", "headers_problem", "set_body_limit", "struct_checker"]

Checker = Callable[[Any], str | None]

DEFAULT_BODY_LIMIT = 64 << 20
"""The largest `bytes` field a hook's answer may hold unless the host sets another (`set_body_limit`): the isolated
wire's own bound (`isolated.wire.GRPC_OPTIONS`), so a plugin is bounded alike in process and isolated."""

_limit = DEFAULT_BODY_LIMIT
_compiled: list[dict[str, Any]] = []
"""The globals of every compiled check (`_all_exact`): where `set_body_limit` puts the new bound."""


def body_limit() -> int:
    """The largest body (any `bytes` field of a hook's answer) a plugin may return in this process."""
    return _limit


def set_body_limit(limit: int) -> None:
    """Bound every `bytes` field of a hook's answer to `limit` bytes in this process (the edge: the largest body it
    holds from a client or a vendor, `EDGE_MAX_BODY_BYTES` and the LLMs' `max_response_bytes`).

    Why: an isolated plugin is bounded by the gRPC message limit and a vendor by `max_response_bytes`, but an
    in-process hook could return a body of any size (2 GB) that the edge then held and sent. Over the bound the call
    fails like a wrong type (`PluginCallError(kind="exception")`, under the plugin's failure policy). The check is one
    `len(...) <= LIMIT` inside the compiled expression, a global of its function, so changing it costs calls nothing.
    """
    global _limit
    if limit < 1:
        raise ValueError("the body limit must be positive")
    _limit = limit
    for names in _compiled:
        names["LIMIT"] = limit


_NAME_BREAKERS = ("\r", "\n", "\x00", ":")


def _headers_right(headers: dict[Any, Any]) -> bool:
    """Whether every name is non-empty text without CR, LF, NUL or ':' and every value is text."""
    if not headers:
        return True
    try:
        names = "".join(headers)
        "".join(headers.values())
    except TypeError:
        return False
    return "" not in headers and "\r" not in names and "\n" not in names and ":" not in names and "\x00" not in names


def headers_problem(headers: dict[Any, Any]) -> str | None:
    """What is wrong with the first bad header of `headers` (`"'x-count' is int, expected str"`), else None."""
    if _headers_right(headers):
        return None
    for name, value in headers.items():
        if not isinstance(name, str):
            return f"a name is {type(name).__name__}, expected str"
        shown = repr(name[:100])
        if not name:
            return "a name is empty"
        if any(c in name for c in _NAME_BREAKERS):
            return f"the name {shown} holds CR, LF, NUL or ':'"
        if not isinstance(value, str):
            return f"{shown} is {type(value).__name__}, expected str"
    return None


def struct_checker(tp: type) -> Checker | None:
    """A function returning `"<Type>.<field> is <got>, expected <want>"` for the first wrong field, else None."""
    checks = [
        (f.name, *allowed) for f in msgspec.structs.fields(tp) if (allowed := _allowed(f.name, f.type)) is not None
    ]
    if not checks:
        return None
    label = tp.__name__

    def explain(value: Any) -> str | None:
        for name, classes, nested in checks:
            field = getattr(value, name)
            if type(field) not in classes:
                if isinstance(field, classes):
                    continue  # a subclass (an IntEnum status) is fine
                want = " | ".join("None" if c is type(None) else c.__name__ for c in classes)
                return f"{label}.{name} is {type(field).__name__}, expected {want}"
            if type(field) is bytes and len(field) > _limit:
                return f"{label}.{name} is {len(field)} bytes, over the {_limit} a plugin may return"
            if nested is not None and field is not None:
                problem = nested(field)
                if problem is not None:
                    return f"{label}.{name}: {problem}"
        return None

    right = _all_exact(checks)

    def check(value: Any) -> str | None:
        return None if right(value) else explain(value)

    check.checks = checks  # type: ignore[attr-defined]  # what an enclosing message's expression inlines
    return check


def _all_exact(checks: list[tuple[str, tuple[type, ...], Checker | None]]) -> Callable[[Any], bool]:
    """One expression over the fields (`type(v.body) is bytes and ...`, nested messages inlined), compiled once
    per message type, as `dataclasses` builds its methods: what nearly every call runs. A loop over the fields
    cost ~0.5 us per call, ~14,000 instructions per chat request of `bench.gate` (six checked results); the
    expression ~0.2 us. False sends the call to `explain`, which also lets a subclass through."""
    names: dict[str, Any] = {"LIMIT": _limit}
    source = f"def right(v0):\n    return {_expression(checks, 'v0', names)}\n"
    exec(source, names)  # noqa: S102  (built from the SDK's own field names and types, never from input)
    _compiled.append(names)
    return names["right"]  # type: ignore[no-any-return]


def _expression(checks: list[tuple[str, tuple[type, ...], Checker | None]], value: str, names: dict[str, Any]) -> str:
    parts = []
    for name, classes, nested in checks:
        field = f"{value}.{name}"
        options = []
        for cls in sorted(classes, key=lambda c: c is not type(None)):  # None first: what most results hold
            if cls is type(None):
                options.append(f"{field} is None")
                continue
            label = f"c{len(names)}"
            names[label] = cls
            if nested is headers_problem:
                right = f"c{len(names)}"
                names[right] = _headers_right
                options.append(f"(type({field}) is {label} and (not {field} or {right}({field})))")  # most are empty
            elif nested is not None and issubclass(cls, msgspec.Struct):
                inner = f"v{len(names)}"
                names[inner] = None  # reserves the name: labels stay unique
                body = _expression(nested.checks, inner, names)  # type: ignore[attr-defined]
                options.append(f"(type({inner} := {field}) is {label} and {body})")
            elif cls is bytes:
                options.append(f"(type({field}) is {label} and len({field}) <= LIMIT)")
            else:
                options.append(f"type({field}) is {label}")
        parts.append("(" + " or ".join(options) + ")")
    return " and ".join(parts)


def _allowed(name: str, annotation: Any) -> tuple[tuple[type, ...], Checker | None] | None:
    """(runtime classes the field may be, a checker for a nested message), or None for a field not checked.

    Checked: `bytes` fields and `status_code` (a `str` body, a `"451"` status: what the edge cannot write), headers
    (`headers_problem`), and nested messages holding such fields. Not checked, to keep the call cheap on the request
    path (`bench.gate`): the rest, which the edge writes nowhere as it is or converts."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    classes: list[type] = []
    nested: Checker | None = None
    for arg in args:
        if arg is type(None):
            classes.append(type(None))
        elif arg is bytes or (arg is int and name == "status_code"):
            classes.append(arg)
        elif name.endswith("headers") and typing.get_origin(arg) is dict and nested is None:
            nested = headers_problem
            classes.append(dict)
        elif isinstance(arg, type) and issubclass(arg, msgspec.Struct) and nested is None:
            nested = struct_checker(arg)
            if nested is None:
                return None
            classes.append(arg)
        else:
            return None
    return tuple(classes), nested
