"""The audit_log plugin through the SDK's real host: each `audit.entry` event becomes one JSON line."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from shared_sdk.messages import Event
from shared_sdk.testing import PluginHarness

ENTRY: dict[str, object] = {
    "id": 7,
    "action": "update",
    "object_type": "llms.llm",
    "changes": {"api_key_encrypted": ["[redacted]"] * 2},
}


async def _published(h: PluginHarness, payload: dict[str, object]) -> None:
    await h.services.events.publish_event(Event(topic="audit.entry", payload=json.dumps(payload).encode()))


async def test_entries_are_appended_as_json_lines(tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    async with PluginHarness("plugins.audit_log:AuditLog", runtime="studio", config={"path": str(target)}) as h:
        await _published(h, ENTRY)
        await _published(h, {**ENTRY, "id": 8})
        for _ in range(100):
            if target.exists() and len(target.read_text().splitlines()) == 2:
                break
            await asyncio.sleep(0.02)
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == [7, 8]
    assert target.stat().st_mode & 0o777 == 0o600


async def test_entries_go_to_a_syslog_server() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(10)
        port = server.getsockname()[1]
        config = {"syslog": f"127.0.0.1:{port}"}
        async with PluginHarness("plugins.audit_log:AuditLog", runtime="studio", config=config) as h:
            await _published(h, ENTRY)
            datagram = await asyncio.to_thread(server.recv, 65536)
    assert (
        b"fjordgate-audit: " in datagram
        and json.loads(datagram.split(b"fjordgate-audit: ", 1)[1].rstrip(b"\x00")) == ENTRY
    )


async def test_the_manifest_subscribes_to_audit_entries() -> None:
    async with PluginHarness("plugins.audit_log:AuditLog", runtime="studio") as h:
        assert (await h.call("get_manifest")).events == ["audit.entry"]
