"""llm_health_board: the admin's "LLM health board" page, a bundled example of a `UIProvider`.

The page (static/index.html + board.js, served sandboxed by the control plane) asks the plugin over RPC:
- `board`: every LLM (`llms.read`) with its health-check record: checks run, failures, last latency and error;
- `check` `{"llm_id": n}`: sends a one-word prompt to that LLM through the platform (`llms.proxy`: budgets and
  analytics apply like any call), times it, and keeps the record in the plugin's KV (`check:<llm id>`).
The record survives restarts (KV in PostgreSQL), so the board shows how often each LLM was checked and failed.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

from shared_sdk import BasePlugin, ConfigProvider, Context, ManifestProvider, ServiceError, UIProvider
from shared_sdk.messages import Asset, LLMMessage, ManifestPermissions, ManifestSlot, PluginManifest

ASSETS = {"index.html": "text/html; charset=utf-8", "board.js": "text/javascript", "board.css": "text/css"}
PROBE = "Health check: reply with the single word pong."


class LLMHealthBoard(BasePlugin, UIProvider, ManifestProvider, ConfigProvider):
    name = "llm-health-board"
    version = "1.0.0"
    description = "Admin page listing every LLM with on-demand health checks (latency, failures), over RPC."

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}
        self._ctx: Context | None = None

    def get_config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "probe_max_tokens": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 64,
                    "default": 5,
                    "description": "Tokens a health check may spend in its answer.",
                }
            },
            "additionalProperties": False,
        }

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(
            name=self.name,
            version=self.version,
            permissions=ManifestPermissions(ui=True, rpc=True, services=["llms.read", "llms.proxy", "kv.readwrite"]),
            rpc=["board", "check"],
            ui_slots=[ManifestSlot(slot="admin.menu", label="LLM health board", component="index.html")],
            assets=list(ASSETS),
        )

    async def initialize(self, ctx: Context, config: dict[str, Any]) -> None:
        """Keeps the context: RPC handlers get no context of their own, and use its services."""
        self.config = config
        self._ctx = ctx

    def list_assets(self) -> list[str]:
        return list(ASSETS)

    def get_asset(self, path: str) -> Asset | None:
        if path not in ASSETS:  # a fixed list: no path ever reaches the file system unchecked
            return None
        content = resources.files(__package__).joinpath("static", path).read_bytes()
        return Asset(path=path, content=content, content_type=ASSETS[path])

    async def handle_rpc(self, method: str, payload: bytes) -> bytes:
        if method == "board":
            return json.dumps({"llms": await self._board()}).encode()
        if method == "check":
            try:
                llm_id = int(json.loads(payload or b"{}").get("llm_id"))
            except (TypeError, ValueError, AttributeError, RecursionError):  # RecursionError: JSON nested too deep
                return json.dumps({"error": 'Give {"llm_id": <number>}.'}).encode()
            return json.dumps({"llm": await self._check(llm_id)}).encode()
        return json.dumps({"error": f"Unknown method {method!r}; use board or check."}).encode()

    @property
    def _services(self) -> Any:
        assert self._ctx is not None, "initialize runs before any RPC"
        return self._ctx.services

    async def _record(self, llm_id: int) -> dict[str, Any]:
        raw = await self._services.kv.read(f"check:{llm_id}")
        return (
            json.loads(raw) if raw else {"checks": 0, "failures": 0, "last_ms": None, "last_error": "", "last_at": None}
        )

    async def _board(self) -> list[dict[str, Any]]:
        rows = []
        for llm in await self._services.studio.list_llms(1, 200):
            record = await self._record(int(llm.id or 0))
            rows.append(
                {
                    "id": llm.id,
                    "name": llm.name,
                    "vendor": llm.vendor,
                    "model": llm.default_model,
                    "active": llm.is_active,
                    **record,
                }
            )
        return rows

    async def _check(self, llm_id: int) -> dict[str, Any]:
        record = await self._record(llm_id)
        started = time.perf_counter()
        try:
            answer = await self._services.studio.call_llm(
                llm_id,
                [LLMMessage(role="user", content=PROBE)],
                max_tokens=int(self.config.get("probe_max_tokens", 5)),
            )
            record["last_error"] = "" if answer.content.strip() else "empty answer"
        except ServiceError as exc:
            record["last_error"] = str(exc)[:300]
        record["checks"] += 1
        record["failures"] += 1 if record["last_error"] else 0
        record["last_ms"] = round((time.perf_counter() - started) * 1000, 1)
        record["last_at"] = time.time()
        await self._services.kv.write(f"check:{llm_id}", json.dumps(record).encode())
        return {"id": llm_id, **record}
