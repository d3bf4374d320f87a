"""A catalogue tool's OpenAPI operations as function tools an LLM can call.

Each operation the tool allows (`Tool.operations`: operation ids; empty allows every operation of the spec)
becomes one OpenAI-shaped function definition: its name (`<tool slug>__<operationId>`, cut to the 64 characters
and the `[A-Za-z0-9_-]` every vendor accepts), its summary or description, and a JSON Schema object whose
properties are the operation's path, query and header parameters plus `body` when it takes a JSON request body.
Local `$ref`s are inlined, because the LLM never sees the spec's `components`.

The tool's credential goes where the operation's security scheme (or the spec's global `security`) says: an
`apiKey` in its header or query parameter, `http` `bearer` or `basic` in `Authorization`; a spec that declares no
scheme gets `Authorization: Bearer <key>`.

Only operations on the spec's first server, an absolute http(s) URL, are offered: that server is the only place a
call may go (`tool_calls.py`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ToolOperation", "function_definitions", "tool_operations"]

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_NAME_MAX = 64
_REF_HOPS = 8
_BODY = "body"


@dataclasses.dataclass(frozen=True, slots=True)
class ToolOperation:
    """One callable operation: where it goes and which arguments go where."""

    tool_id: int
    tool_slug: str
    operation_id: str
    name: str
    description: str
    method: str
    server: str
    path: str
    parameters: dict[str, Any]
    path_params: tuple[str, ...] = ()
    query_params: tuple[str, ...] = ()
    header_params: tuple[str, ...] = ()
    takes_body: bool = False
    auth: tuple[str, str, str] = ("header", "Authorization", "bearer")
    """Where the tool's key goes: (header | query, its name, bearer | basic | "" for the key as it is)."""

    def definition(self) -> dict[str, Any]:
        """The OpenAI function definition (`StudioServices.call_llm`'s `tools` shape)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def _resolve(spec: dict[str, Any], node: Any, hops: int = 0) -> Any:
    """`node` with local `#/...` references replaced by what they point to; a chain of more than a few references
    (a recursive schema) ends in an empty schema."""
    if isinstance(node, list):
        return [_resolve(spec, item, hops) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if hops >= _REF_HOPS or not ref.startswith("#/"):
            return {}
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
        return _resolve(spec, target, hops + 1) if isinstance(target, dict) else {}
    return {key: _resolve(spec, value, hops) for key, value in node.items()}


def _server(spec: dict[str, Any]) -> str:
    """The spec's first server as an absolute http(s) URL without a trailing slash; "" when it has none."""
    servers = spec.get("servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        return ""
    url = str(servers[0].get("url") or "")
    for name, variable in (servers[0].get("variables") or {}).items():
        if isinstance(variable, dict):
            url = url.replace("{" + str(name) + "}", str(variable.get("default", "")))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "{" in url:
        return ""
    return url.rstrip("/")


def _name(slug: str, operation_id: str, taken: set[str]) -> str:
    base = _NAME_CHARS.sub("_", f"{slug}__{operation_id}")
    if not re.match(r"[A-Za-z_]", base):
        base = f"t_{base}"
    name, n = base[:_NAME_MAX], 1
    while name in taken:
        n += 1
        name = f"{base[: _NAME_MAX - len(str(n)) - 1]}_{n}"
    taken.add(name)
    return name


def _auth(spec: dict[str, Any], operation: dict[str, Any]) -> tuple[str, str, str]:
    requirements = operation.get("security", spec.get("security"))
    schemes = (spec.get("components") or {}).get("securitySchemes") or {}
    for requirement in requirements if isinstance(requirements, list) else []:
        for name in requirement if isinstance(requirement, dict) else []:
            scheme = schemes.get(name)
            if not isinstance(scheme, dict):
                continue
            if scheme.get("type") == "apiKey" and scheme.get("in") in ("header", "query") and scheme.get("name"):
                return str(scheme["in"]), str(scheme["name"]), ""
            if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() in ("bearer", "basic"):
                return "header", "Authorization", str(scheme["scheme"]).lower()
    return "header", "Authorization", "bearer"


def _operation_id(method: str, path: str, operation: dict[str, Any]) -> str:
    given = operation.get("operationId")
    if isinstance(given, str) and given:
        return given
    return _NAME_CHARS.sub("_", f"{method}_{path}").strip("_")


def _json_body(operation: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    body = operation.get("requestBody")
    if not isinstance(body, dict):
        return None, False
    content = body.get("content") or {}
    media = content.get("application/json") if isinstance(content, dict) else None
    if not isinstance(media, dict):
        return None, False
    schema = media.get("schema")
    return (schema if isinstance(schema, dict) else {"type": "object"}), bool(body.get("required"))


def _operation(
    tool: Any,
    spec: dict[str, Any],
    server: str,
    method: str,
    path: str,
    item: dict[str, Any],
    operation: dict[str, Any],
    taken: set[str],
) -> ToolOperation:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for param in [*(item.get("parameters") or []), *(operation.get("parameters") or [])]:
        if isinstance(param, dict) and param.get("in") in ("path", "query", "header") and param.get("name"):
            merged[(str(param["in"]), str(param["name"]))] = param  # an operation's parameter overrides its path's
    properties: dict[str, Any] = {}
    required: list[str] = []
    where: dict[str, list[str]] = {"path": [], "query": [], "header": []}
    for (place, name), param in merged.items():
        schema = dict(param.get("schema") or {"type": "string"})
        if param.get("description"):
            schema["description"] = str(param["description"])
        properties[name] = schema
        where[place].append(name)
        if param.get("required") or place == "path":
            required.append(name)
    body, body_required = _json_body(operation)
    if body is not None:
        properties[_BODY] = body
        if body_required:
            required.append(_BODY)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    operation_id = _operation_id(method, path, operation)
    description = str(operation.get("summary") or operation.get("description") or f"{method.upper()} {path}")
    if tool.description:
        description = f"{description} (tool {tool.name}: {tool.description})"
    return ToolOperation(
        tool_id=tool.pk,
        tool_slug=tool.slug,
        operation_id=operation_id,
        name=_name(tool.slug, operation_id, taken),
        description=description[:1024],
        method=method.upper(),
        server=server,
        path=path,
        parameters=parameters,
        path_params=tuple(where["path"]),
        query_params=tuple(where["query"]),
        header_params=tuple(where["header"]),
        takes_body=body is not None,
        auth=_auth(spec, operation),
    )


def tool_operations(tools: list[Any]) -> list[ToolOperation]:
    """The callable operations of these catalogue tools, in spec order; a tool without a usable spec has none."""
    taken: set[str] = set()
    out: list[ToolOperation] = []
    for tool in tools:
        raw = tool.openapi_spec
        if not isinstance(raw, dict):
            continue
        spec: dict[str, Any] = _resolve(raw, raw)
        server = _server(spec)
        paths = spec.get("paths")
        if not server or not isinstance(paths, dict):
            continue
        allowed = {str(o) for o in tool.operations or []}
        for path, item in paths.items():
            if not isinstance(item, dict) or not str(path).startswith("/"):
                continue
            for method in _METHODS:
                operation = item.get(method)
                if not isinstance(operation, dict):
                    continue
                if allowed and _operation_id(method, path, operation) not in allowed:
                    continue
                out.append(_operation(tool, spec, server, method, str(path), item, operation, taken))
    return out


def function_definitions(operations: list[ToolOperation]) -> list[dict[str, Any]]:
    return [operation.definition() for operation in operations]
