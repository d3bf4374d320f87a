"""The one place configuration is read from the environment (12-factor).

Every process validates its configuration at start-up through these readers, so a bad value stops the process
with one line that names the variable, before anything half-configured runs. The readers raise `ConfigError`;
entry points turn it into that line and a non-zero exit (`exit_on_config_error`).
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Literal, NoReturn, TypeVar, overload
from urllib.parse import urlsplit

__all__ = [
    "ConfigError",
    "env_bool",
    "env_float",
    "env_header_name",
    "env_int",
    "env_list",
    "env_str",
    "env_url",
    "exit_on_config_error",
    "fail",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration variable is missing or malformed; `variable` names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


# The overloads let callers that pass a default or `required=True` use the value as a `str` without a check.
@overload
def env_str(name: str, default: str, *, required: bool = False, environ: Mapping[str, str] | None = None) -> str: ...
@overload
def env_str(
    name: str, default: None = None, *, required: Literal[True], environ: Mapping[str, str] | None = None
) -> str: ...
@overload
def env_str(
    name: str, default: str | None = None, *, required: bool = False, environ: Mapping[str, str] | None = None
) -> str | None: ...
def env_str(
    name: str, default: str | None = None, *, required: bool = False, environ: Mapping[str, str] | None = None
) -> str | None:
    value = _raw(name, environ)
    if value is None:
        if required:
            raise ConfigError(name, "is required but not set")
        return default
    return value


def _parsed(name: str, default: T, parse: Callable[[str], T], what: str, environ: Mapping[str, str] | None) -> T:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        return parse(value)
    except ValueError:
        raise ConfigError(name, f"must be {what}, got {value!r}") from None


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _parsed(name, default, int, "an integer", environ)
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be at most {maximum}, got {value}")
    return value


def env_float(
    name: str, default: float, *, minimum: float | None = None, environ: Mapping[str, str] | None = None
) -> float:
    value = _parsed(name, default, float, "a number", environ)
    if not math.isfinite(value):  # float() takes "nan" and "inf": a nan bound compares false with everything
        raise ConfigError(name, f"must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(value)


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    return _parsed(name, default, _parse_bool, "one of 1/0/true/false/yes/no/on/off", environ)


def env_list(name: str, default: list[str] | None = None, *, environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


def env_header_name(name: str, *, environ: Mapping[str, str] | None = None) -> str | None:
    """An HTTP header's name (letters, digits, `-`), e.g. the one a TLS-ending proxy sets: `X-Forwarded-Proto`."""
    value = env_str(name, None, environ=environ)
    if value is not None and not _HEADER_NAME.match(value):
        raise ConfigError(name, f"give a header name such as X-Forwarded-Proto, got {value!r}")
    return value


@overload
def env_url(
    name: str,
    schemes: tuple[str, ...],
    default: str,
    *,
    required: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str: ...
@overload
def env_url(
    name: str,
    schemes: tuple[str, ...],
    default: None = None,
    *,
    required: Literal[True],
    environ: Mapping[str, str] | None = None,
) -> str: ...
@overload
def env_url(
    name: str,
    schemes: tuple[str, ...],
    default: str | None = None,
    *,
    required: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str | None: ...
def env_url(
    name: str,
    schemes: tuple[str, ...],
    default: str | None = None,
    *,
    required: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """A URL whose scheme is one of `schemes`; checked for shape only (reachability is checked by the caller)."""
    value = env_str(name, default, required=required, environ=environ)
    if value is None:
        return None
    for url in value.split(","):  # NATS accepts a comma-separated server list
        parts = urlsplit(url.strip())
        if parts.scheme not in schemes:
            raise ConfigError(name, f"scheme must be one of {', '.join(schemes)}, got {url.strip()!r}")
        if not parts.netloc and "host=" not in parts.query:
            raise ConfigError(name, f"has no host: {url.strip()!r}")
    return value


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear line to stderr and exit: how every Fjordgate process reports a start-up failure."""
    print(f"fjordgate: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
