"""IP allow/deny list, checked before authentication so unwanted clients never reach key lookup.

A deny entry always wins; with a non-empty allow list, only listed addresses pass. Networks are parsed once
in `initialize`, so a request costs one `ip_address()` and a few containment checks.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from shared_sdk import BasePlugin, Context, EnrichedRequest, PluginResponse

NAME = "ip-filter"

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "allow": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "CIDRs or addresses allowed; empty = everyone not denied",
        },
        "deny": {"type": "array", "items": {"type": "string"}, "default": []},
        "status_code": {"type": "integer", "minimum": 400, "maximum": 499, "default": 403},
    },
    "additionalProperties": False,
}


class IPFilter(BasePlugin):
    name = NAME
    version = "1.0.0"
    description = "Blocks client addresses by allow and deny lists (pre-auth)."

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        try:
            self.allow = [ipaddress.ip_network(n, strict=False) for n in config.get("allow", [])]
            self.deny = [ipaddress.ip_network(n, strict=False) for n in config.get("deny", [])]
        except ValueError as exc:
            raise ValueError(f"ip-filter: bad network: {exc}") from None
        self.status_code = int(config.get("status_code", 403))

    async def handle_pre_auth(self, ctx: Context, req: EnrichedRequest) -> PluginResponse:
        try:
            address = ipaddress.ip_address(req.remote_addr)
        except ValueError:
            return PluginResponse(
                block=True, status_code=self.status_code, error_message="client address could not be determined"
            )
        if any(address in net for net in self.deny) or (self.allow and not any(address in n for n in self.allow)):
            return PluginResponse(
                block=True, status_code=self.status_code, error_message=f"client address {address} is not allowed"
            )
        return PluginResponse()


def create_plugin() -> IPFilter:
    return IPFilter()
