"""What the mock saw: a bounded log of recent requests and running counters, for tests to assert on.

This is a test double, so headers are kept whole (keys included): a gateway test asserts that the client's key
never reached the upstream and the vendor key did.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

from starlette.requests import Request


class Recorder:
    """Request log (last `size` requests, oldest first) and counters; `size=0` keeps counters only."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: deque[dict[str, Any]] = deque(maxlen=size or 1)
        self.reset()

    def reset(self) -> None:
        self.entries.clear()
        self.requests_total = 0
        self.streams = 0
        self.by_path: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.last_auth: dict[str, str] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def open(self, request: Request, request_id: str, body: Any) -> dict[str, Any]:
        """Start the entry for one request; the handler fills in status, stream and fault as they are known."""
        scope = request.scope
        path: str = scope["path"]
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        self.requests_total += 1
        self.by_path[path] += 1
        credential = headers.get("authorization") or headers.get("x-api-key") or headers.get("x-goog-api-key")
        if credential is not None:
            self.last_auth[path] = credential
        entry: dict[str, Any] = {
            "id": request_id,
            "time": time.time(),
            "method": scope["method"],
            "path": path,
            "query": scope["query_string"].decode("latin-1"),
            "headers": headers,
            "body": body,
            "model": body.get("model") if isinstance(body, dict) else None,
            "stream": False,
            "status": None,
            "fault": None,
        }
        if self.size:
            self.entries.append(entry)
        return entry

    def close(self, entry: dict[str, Any], status: int | str, *, stream: bool = False) -> None:
        entry["status"] = status
        entry["stream"] = stream
        self.by_status[str(status)] += 1
        if stream:
            self.streams += 1

    def fault(self, entry: dict[str, Any], kind: str, description: dict[str, Any]) -> None:
        entry["fault"] = description
        self.faults[kind] += 1

    def usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def recent(self, limit: int, path: str | None = None) -> list[dict[str, Any]]:
        """The last `limit` entries (optionally for one path), oldest first."""
        if not self.size:
            return []
        entries = [entry for entry in self.entries if path is None or entry["path"] == path]
        return entries[-limit:] if limit else []

    def stats(self, fail_counters: dict[str, int]) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "streams": self.streams,
            "by_path": dict(self.by_path),
            "by_status": dict(self.by_status),
            "faults": dict(self.faults),
            "last_auth": dict(self.last_auth),
            "fail_counters": dict(fail_counters),
            "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens},
        }
