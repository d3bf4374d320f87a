"""Everything a plugin author needs to unit-test a plugin without a running system.

- in-memory services: `InMemoryKV`, `RecordingLogger`, `InMemoryEventHub` / `InMemoryEvents`,
  `InMemoryGateway`, `InMemoryStudio`, and `make_services(runtime, slug)` bundling them;
- builders: `make_context`, `make_request`, `make_response`, `chat_body`;
- `PipelineRunner`: the plugin(s) through the real host and hook chain, in the edge's order;
- `PluginHarness`: one plugin loaded through the real host (config validated, initialize called),
  optionally isolated in its own process, to call any capability directly.
"""

from .builders import chat_body, make_context, make_request, make_response
from .harness import PluginHarness
from .runner import PipelineOutcome, PipelineRunner, error_body
from .services import (
    InMemoryEventHub,
    InMemoryEvents,
    InMemoryGateway,
    InMemoryKV,
    InMemoryStudio,
    LogRecord,
    RecordingLogger,
    make_services,
)

__all__ = [
    "InMemoryEventHub",
    "InMemoryEvents",
    "InMemoryGateway",
    "InMemoryKV",
    "InMemoryStudio",
    "LogRecord",
    "PipelineOutcome",
    "PipelineRunner",
    "PluginHarness",
    "RecordingLogger",
    "chat_body",
    "error_body",
    "make_context",
    "make_request",
    "make_response",
    "make_services",
]
