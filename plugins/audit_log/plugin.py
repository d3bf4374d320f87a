"""audit_log: forwards the control plane's audit trail as JSON lines to a file or to syslog.

The control plane publishes every audit entry as a studio event (topic `audit.entry`) after its write commits;
this plugin subscribes to it (its manifest lists the topic, so every control-plane process loads it before the
first entry is published) and writes one JSON object per line: to `path` (appended, one `write` per line, so
concurrent processes interleave whole lines) or, with `syslog` set, to a syslog server (`/dev/log` or
`host:port`, UDP). Use it to feed a SIEM, or to keep the trail beyond the database's retention.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.handlers
import os
from typing import Any

from shared_sdk import BasePlugin, ConfigProvider, ManifestProvider
from shared_sdk.messages import Event, ManifestPermissions, PluginManifest

TOPIC = "audit.entry"


class AuditLog(BasePlugin, ManifestProvider, ConfigProvider):
    name = "audit-log"
    version = "1.0.0"
    description = "Writes the control plane's audit entries as JSON lines to a file or syslog."

    def get_config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "description": "file to append JSON lines to"},
                "syslog": {"type": "string", "minLength": 1, "description": "/dev/log or host:port (UDP)"},
                "facility": {"type": "string", "default": "auth", "enum": ["auth", "authpriv", "local0", "user"]},
            },
            "additionalProperties": False,
        }

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(
            id="audit-log",
            version=self.version,
            name="Audit log forwarder",
            description=self.description,
            permissions=ManifestPermissions(),
            events=[TOPIC],
        )

    async def initialize(self, ctx: Any, config: dict[str, Any]) -> None:
        await super().initialize(ctx, config)
        self._path = config.get("path")
        self._syslog: logging.Logger | None = None
        if config.get("syslog"):
            target = config["syslog"]
            address: Any = (
                target if target.startswith("/") else (target.rsplit(":", 1)[0], int(target.rsplit(":", 1)[1]))
            )
            handler = logging.handlers.SysLogHandler(address=address, facility=config.get("facility", "auth"))
            handler.setFormatter(logging.Formatter("fjordgate-audit: %(message)s"))
            logger = logging.getLogger(f"fjordgate.audit-log.{id(self)}")
            logger.propagate = False
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            self._syslog = logger
        self._subscription = await ctx.services.events.subscribe(TOPIC, self._on_entry)

    async def shutdown(self, ctx: Any) -> None:
        subscription = getattr(self, "_subscription", None)  # describe() loads without initialize()
        if subscription is not None:
            await ctx.services.events.unsubscribe(subscription)
        syslog: logging.Logger | None = getattr(self, "_syslog", None)
        if syslog is not None:
            for handler in list(syslog.handlers):
                handler.close()
                syslog.removeHandler(handler)

    async def _on_entry(self, event: Event) -> None:
        line = json.dumps(json.loads(event.payload), sort_keys=True, separators=(",", ":"))
        if self._path:
            await asyncio.to_thread(_append, self._path, line)
        if self._syslog is not None:
            self._syslog.info(line)


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
