"""The plugin host, used by the edge and the control plane alike.

    host = PluginHost(Runtime.GATEWAY, services_factory)
    handle = await host.load(PluginSpec(slug="pii", import_path="plugins.pii:PIIRedactor", config={...}))
    response = await handle.call("handle_post_auth", ctx, request)

See `PluginSpec` for in-process vs isolated, `PluginHandle` for call semantics (timeouts, failure policy),
`PluginHealth` (`handle.health()`, `host.health()`) for supervision, `LoopWatchdog` (`host.watchdog`) for
async handlers that block the loop, `shared_sdk.scopes` for service scopes.
"""

from ._config import apply_defaults, validate_config
from ._host import PluginHost
from ._loader import ENTRY_POINT_GROUP, load_plugin_object
from .handle import DEFAULT_SYNC_WORKERS, InProcessHandle, PluginHandle
from .health import PluginHealth
from .spec import FailurePolicy, PluginSpec
from .watchdog import DEFAULT_STALL_THRESHOLD_S, LoopStall, LoopWatchdog

__all__ = [
    "DEFAULT_STALL_THRESHOLD_S",
    "DEFAULT_SYNC_WORKERS",
    "ENTRY_POINT_GROUP",
    "FailurePolicy",
    "InProcessHandle",
    "LoopStall",
    "LoopWatchdog",
    "PluginHandle",
    "PluginHealth",
    "PluginHost",
    "PluginSpec",
    "apply_defaults",
    "load_plugin_object",
    "validate_config",
]
