"""Every exception the SDK raises, in one place so callers can catch by family.

Plugin authors rarely raise these: a plugin rejects a request by *returning* a `PluginResponse` with
`block=True` or a `ShortCircuit`, never by raising. These types are what the host raises to the code
that drives plugins (the edge pipeline, the control plane), so that one `except` covers one kind of failure.

    FjordgateSDKError
     ├── PluginLoadError            the plugin could not be imported, spawned or described
     ├── PluginConfigError          config failed the plugin's JSON Schema, or `initialize` rejected it
     ├── PluginCallError            one call failed: kind = timeout | exception | crash | unavailable
     │    └── CapabilityNotImplemented   the plugin does not implement the method that was called
     ├── RuntimeServiceUnavailable  studio services asked for in the gateway runtime (or the reverse)
     └── ServiceError               a host service (KV, events, runtime services) failed for the plugin
          └── ServiceScopeDenied    the plugin called a service its manifest does not declare a scope for
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "CapabilityNotImplemented",
    "CallFailureKind",
    "FjordgateSDKError",
    "PluginCallError",
    "PluginConfigError",
    "PluginLoadError",
    "RuntimeServiceUnavailable",
    "ServiceError",
    "ServiceScopeDenied",
]

CallFailureKind = Literal["timeout", "exception", "crash", "unavailable"]


class FjordgateSDKError(Exception):
    """Root of every SDK error."""


class PluginLoadError(FjordgateSDKError):
    """The plugin named by a spec could not be imported, spawned, or did not answer the handshake."""

    def __init__(self, slug: str, message: str) -> None:
        self.slug = slug
        self.message = message
        super().__init__(f"plugin {slug!r} could not be loaded: {message}")


class PluginConfigError(FjordgateSDKError):
    """The configuration given to a plugin is invalid.

    `errors` lists one human-readable line per problem (JSON path + reason), so an admin form or API can
    show all of them at once rather than the first.
    """

    def __init__(self, slug: str, errors: list[str]) -> None:
        self.slug = slug
        self.errors = list(errors)
        super().__init__(f"invalid config for plugin {slug!r}: " + "; ".join(self.errors))


class PluginCallError(FjordgateSDKError):
    """A call into a plugin did not produce a result.

    `kind` says why (`timeout`, `exception` raised by the plugin, `crash` of its process, or `unavailable`
    while it restarts); `fail_open` carries the plugin's failure policy so the caller decides in one line
    whether to skip the plugin (open) or fail the request (closed).
    """

    def __init__(
        self,
        slug: str,
        method: str,
        kind: CallFailureKind,
        fail_open: bool,
        detail: str = "",
    ) -> None:
        self.slug = slug
        self.method = method
        self.kind = kind
        self.fail_open = fail_open
        self.detail = detail
        text = f"plugin {slug!r} {method}: {kind}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # keeps the error picklable despite the custom signature
        return (type(self), (self.slug, self.method, self.kind, self.fail_open, self.detail))


class CapabilityNotImplemented(PluginCallError):
    """The caller asked a plugin for a method it does not implement (a bug in the caller, not the plugin)."""

    def __init__(self, slug: str, method: str, fail_open: bool = False, detail: str = "") -> None:
        super().__init__(slug, method, "unavailable", fail_open, detail or "method not implemented by this plugin")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.slug, self.method, self.fail_open, self.detail))


class RuntimeServiceUnavailable(FjordgateSDKError):
    """A plugin asked for the services of a runtime it is not running in.

    Raised instead of an `AttributeError` so the message says what happened and what to check
    (`ctx.runtime`) before calling runtime-specific services.
    """

    def __init__(self, wanted: str, actual: str) -> None:
        self.wanted = wanted
        self.actual = actual
        super().__init__(
            f"{wanted} services are only available in the {wanted} runtime; this plugin is running in the "
            f"{actual} runtime (check ctx.runtime before calling ctx.services.{wanted})"
        )

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.wanted, self.actual))


class ServiceError(FjordgateSDKError):
    """A host service call made by a plugin failed (for an isolated plugin: on the host's side of the broker)."""


class ServiceScopeDenied(ServiceError):
    """A plugin called a host service outside the service scopes it was granted (see `shared_sdk.scopes`).

    Raised from the service call itself, in-process and in an isolated plugin alike, so the plugin author sees
    which scope to declare; uncaught, it fails the plugin call as `PluginCallError(kind="exception")`.
    """

    def __init__(self, plugin: str, scope: str, operation: str) -> None:
        self.plugin = plugin
        self.scope = scope
        self.operation = operation
        super().__init__(
            f"plugin {plugin!r} may not call {operation}: it needs the service scope {scope!r}, which it has not "
            f"been granted (declare it in get_manifest().permissions.services)"
        )

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.plugin, self.scope, self.operation))
