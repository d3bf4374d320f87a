"""`PluginSpec`: how the host should load one plugin (what to run, its config, and how to treat its failures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FailurePolicy", "PluginSpec"]

FailurePolicy = Literal["open", "closed"]


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """One plugin to load.

    Where the code comes from (exactly one way):
    - `import_path="pkg.module:ClassName"` (a class, a factory, or a plugin instance) or
      `import_path="entrypoint:NAME"` (the `fjordgate.plugins` entry-point group): loaded in-process;
    - `command=[...]`: a program whose entry point calls `shared_sdk.serve(MyPlugin())`, run isolated;
    - `import_path` with `isolated=True`: the same class, run isolated by `python -m shared_sdk.isolated.run`.

    `failure_policy="open"` skips a failing plugin (logged); `"closed"` fails the request. `timeout_s` bounds
    every call (for streams: the wait for each item). `ping_*` tune the health checks of an isolated plugin,
    `sync_workers` its thread pool for plain-`def` handlers, `extra_scopes` the service scopes the operator
    grants beyond the plugin's manifest. Fields left `None` take the host's defaults.
    """

    slug: str
    import_path: str | None = None
    command: list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    failure_policy: FailurePolicy = "open"
    timeout_s: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    isolated: bool = False
    cwd: str | None = None
    startup_timeout_s: float = 20.0
    restart_backoff_initial_s: float = 0.2
    restart_backoff_max_s: float = 15.0
    sync_workers: int | None = None
    """Threads for plain-`def` handlers of this plugin (a stuck handler only starves its own plugin).
    `None`: the host's default (`PluginHost(sync_workers=8)`)."""
    ping_interval_s: float | None = None
    """Isolated plugins: seconds between health pings. `None`: the host's default (`PluginHost(ping_interval_s=30)`,
    as the reference system)."""
    ping_timeout_s: float = 5.0
    """Isolated plugins: a ping not answered within this is a missed ping."""
    ping_failures: int = 3
    """Isolated plugins: this many missed pings in a row mark a live process as hung: it is killed and restarted
    with the crash backoff."""
    extra_scopes: tuple[str, ...] = ()
    """Service scopes the operator grants on top of those the plugin's manifest declares (`"*"`: all of them).
    See `shared_sdk.scopes` for the rule."""

    def __post_init__(self) -> None:
        if not self.slug:
            raise ValueError("PluginSpec.slug must not be empty")
        if self.failure_policy not in ("open", "closed"):
            raise ValueError(f"failure_policy must be 'open' or 'closed', not {self.failure_policy!r}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.import_path is None and not self.command:
            raise ValueError(f"plugin {self.slug!r}: set import_path or command")
        if self.import_path is not None and self.command:
            raise ValueError(f"plugin {self.slug!r}: set import_path or command, not both")
        if self.sync_workers is not None and self.sync_workers < 1:
            raise ValueError(f"plugin {self.slug!r}: sync_workers must be at least 1")
        if self.ping_interval_s is not None and self.ping_interval_s <= 0:
            raise ValueError(f"plugin {self.slug!r}: ping_interval_s must be positive")
        if self.ping_timeout_s <= 0:
            raise ValueError(f"plugin {self.slug!r}: ping_timeout_s must be positive")
        if self.ping_failures < 1:
            raise ValueError(f"plugin {self.slug!r}: ping_failures must be at least 1")
        if isinstance(self.extra_scopes, str):
            raise ValueError(f"plugin {self.slug!r}: extra_scopes must be a list of scopes, not a string")
        object.__setattr__(self, "extra_scopes", tuple(self.extra_scopes))  # a list is accepted, kept hashable

    @property
    def fail_open(self) -> bool:
        return self.failure_policy == "open"

    @property
    def runs_isolated(self) -> bool:
        return bool(self.command) or self.isolated

    @classmethod
    def from_config(cls, plugin: Any, **overrides: Any) -> PluginSpec:
        """Build a spec from a snapshot `PluginConfig` (duck-typed: slug, import_path, command, config, ...)."""
        values: dict[str, Any] = {
            "slug": plugin.slug,
            "import_path": plugin.import_path,
            "command": list(plugin.command) if plugin.command else None,
            "config": dict(plugin.config),
            "failure_policy": plugin.failure_policy,
            "timeout_s": plugin.timeout_ms / 1000.0,
        }
        values.update(overrides)
        return cls(**values)
