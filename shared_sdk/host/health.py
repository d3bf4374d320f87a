"""`PluginHealth`: one loaded plugin's state, as the edge's `/ready` and the control plane's admin show it.

A msgspec Struct so callers can put it in a JSON response as is (`msgspec.json.encode(handle.health())`).
"""

from __future__ import annotations

import msgspec

__all__ = ["PluginHealth"]


class PluginHealth(msgspec.Struct, kw_only=True):
    slug: str
    healthy: bool
    """Calls are being served. False while an isolated plugin restarts, after unload, and when every worker
    thread of a plain-`def` plugin is stuck (calls then fail fast instead of queueing)."""
    state: str
    """`running`, `restarting` (isolated, after a crash or a hang), `degraded` (all worker threads stuck),
    `stopped` (not loaded yet, or unloaded)."""
    isolated: bool = False
    pid: int | None = None
    restarts: int = 0
    """Times an isolated plugin's process was replaced after a crash or a hang."""
    last_error: str = ""
    """Why the plugin was last unhealthy or restarted (exit code and stderr tail, missed pings, stuck threads)."""
    last_exit_code: int | None = None
    last_ping_at: float | None = None
    """Unix time of the last answered health ping (isolated plugins only)."""
    last_ping_ms: float | None = None
    ping_failures: int = 0
    """Consecutive unanswered pings; at `PluginSpec.ping_failures` the process is killed and restarted."""
    sync_workers: int = 0
    """Size of the thread pool for plain-`def` handlers."""
    busy_threads: int = 0
    stuck_threads: int = 0
    """Worker threads still running a handler whose call already timed out (they cannot be interrupted)."""
    scopes: list[str] = []
    """Service scopes the plugin holds (baseline included)."""
    denied_scopes: dict[str, int] = {}
    """Scopes the plugin called without holding them -> number of denied calls."""
