"""The desk agent's tools: small, safe and offline. None touches the network, the disk or the process.

- `calculate`: arithmetic on numbers (+ - * / // % **, parentheses, unary signs), parsed with `ast` and walked by
  hand, never `eval`; exponents and results are bounded so a prompt cannot make the studio burn CPU or memory.
- `current_time`: the date and time in UTC or a named IANA time zone.
- `list_llms`: the LLMs the asking user may use (from the request: the user's catalogue), with privacy scores.
- `word_count`: words and characters of a text.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import operator
import zoneinfo
from collections.abc import Callable
from typing import Any

from shared_sdk.messages import LLM

__all__ = ["TOOLS", "ToolError", "run_tool"]

MAX_EXPRESSION = 200
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 10**100


class ToolError(Exception):
    """A tool refused its arguments; the message goes back to the LLM (and the user) as the tool's result."""


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


TOOLS: list[dict[str, Any]] = [
    _function(
        "calculate",
        "Evaluate an arithmetic expression exactly, e.g. '(1250 * 0.19) + 3'.",
        {"expression": {"type": "string", "description": "numbers, + - * / // % ** and parentheses"}},
        ["expression"],
    ),
    _function(
        "current_time",
        "The current date and time in a time zone.",
        {"timezone": {"type": "string", "enum": ["UTC", "Europe/Oslo", "America/New_York", "Asia/Tokyo"]}},
        [],
    ),
    _function("list_llms", "The LLMs the user may use here, with their privacy scores.", {}, []),
    _function("word_count", "Count the words and characters of a text.", {"text": {"type": "string"}}, ["text"]),
]

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))  # type: ignore[no-any-return]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponents above {MAX_EXPONENT} are refused")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("the result is out of range") from None
        if isinstance(value, complex) or abs(value) > MAX_MAGNITUDE:
            raise ToolError("the result is out of range")
        return value  # type: ignore[no-any-return]
    raise ToolError("only numbers, + - * / // % ** and parentheses are allowed")


def calculate(expression: str) -> str:
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"keep the expression under {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ToolError(f"not an arithmetic expression: {expression!r}") from None
    value = _evaluate(tree.body)
    shown = f"{value:.12g}" if isinstance(value, float) else str(value)
    return f"{expression} = {shown}"


def current_time(timezone: str = "UTC", *, now: dt.datetime | None = None) -> str:
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {timezone!r}") from None
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    return f"{moment:%Y-%m-%d %H:%M} ({timezone}, {moment:%A})"


def list_llms(llms: list[LLM]) -> str:
    if not llms:
        return "no LLM is available to this user"
    return "; ".join(f"{llm.name} ({llm.slug}, privacy {llm.privacy_score})" for llm in llms)


def word_count(text: str) -> str:
    return f"{len(text.split())} words, {len(text)} characters"


def run_tool(name: str, arguments: str, *, llms: list[LLM]) -> str:
    """Run one tool call as the LLM asked for it; raises `ToolError` with a sentence for the LLM."""
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        raise ToolError("the arguments are not JSON") from None
    if not isinstance(args, dict):
        raise ToolError("the arguments must be a JSON object")
    if name == "calculate":
        return calculate(str(args.get("expression", "")))
    if name == "current_time":
        return current_time(str(args.get("timezone") or "UTC"))
    if name == "list_llms":
        return list_llms(llms)
    if name == "word_count":
        return word_count(str(args.get("text", "")))
    raise ToolError(f"there is no tool {name!r}")
