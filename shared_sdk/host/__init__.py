"""The plugin host, used by the edge and the control plane alike.

    host = PluginHost(Runtime.GATEWAY, services_factory)
    handle = await host.load(PluginSpec(slug="pii", import_path="plugins.pii:PIIRedactor", config={...}))
    response = await handle.call("handle_post_auth", ctx, request)

See `PluginSpec` for in-process vs isolated, `PluginSources` for where plugin code may come from,
`PluginHandle` for call semantics (timeouts, failure policy), `PluginHealth` (`handle.health()`, `host.health()`)
for supervision, `LoopWatchdog` (`host.watchdog`) for async handlers that block the loop, `shared_sdk.scopes` for
service scopes.
"""

from ._config import apply_defaults, validate_config
from ._host import RETIRE_AFTER_S, RETIRED_MAX, PluginHost
from ._loader import ENTRY_POINT_GROUP, ENTRY_POINT_PREFIX, load_plugin_object
from .handle import DEFAULT_SYNC_WORKERS, InProcessHandle, PluginHandle
from .health import PluginHealth
from .sources import DEFAULT_COMMAND_DIRS, DEFAULT_IMPORT_ROOTS, PluginSourceRefused, PluginSources
from .spec import FailurePolicy, PluginSpec
from .watchdog import DEFAULT_STALL_THRESHOLD_S, LoopStall, LoopWatchdog

__all__ = [
    "RETIRED_MAX",
    "RETIRE_AFTER_S",
    "DEFAULT_STALL_THRESHOLD_S",
    "DEFAULT_COMMAND_DIRS",
    "DEFAULT_IMPORT_ROOTS",
    "DEFAULT_SYNC_WORKERS",
    "ENTRY_POINT_GROUP",
    "ENTRY_POINT_PREFIX",
    "FailurePolicy",
    "InProcessHandle",
    "LoopStall",
    "LoopWatchdog",
    "PluginHandle",
    "PluginHealth",
    "PluginHost",
    "PluginSourceRefused",
    "PluginSources",
    "PluginSpec",
    "apply_defaults",
    "load_plugin_object",
    "validate_config",
]
