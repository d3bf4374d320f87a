"""Keep the studio plugins that receive events loaded in the web and worker processes, as the bridge does.

Each control-plane process has its own studio host and event bus (`runtime`). The bridge loads plugins that hear
things without being called (`plugins_load_at_start`) when it starts and every 30 s. The web server and the
Celery worker raise events too (audit entries of every write, through `publish_studio_event`; plugin writes made
in a schedule run), and the web server serves chat sessions of session-aware agents: a plugin that subscribes in
`on_session_ready` and is loaded only when first called would miss what these processes publish before then. So
they run the same loading, in a daemon thread: once at start, then every `interval_s`.

Edge payloads arrive only at the bridge; loading a payload-receiving plugin in web or worker as well costs one
load and keeps it ready for the events it also subscribes to, so the same selection is used everywhere.
"""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections

__all__ = ["PluginPreloader", "plugins_preload_start"]

logger = logging.getLogger(__name__)

PRELOAD_INTERVAL_S = 30.0
"""The bridge's period: a plugin registered meanwhile is loaded within that time (an event for a topic listed in
its manifest loads it at once anyway)."""

_started: PluginPreloader | None = None
_started_lock = threading.Lock()


class PluginPreloader(threading.Thread):
    """Runs `plugins_load_at_start` now and then every `interval_s` until `stop()`."""

    def __init__(self, process: str, interval_s: float = PRELOAD_INTERVAL_S) -> None:
        super().__init__(name=f"fjordgate-plugin-preload-{process}", daemon=True)
        self.process = process
        self.interval_s = interval_s
        self.loaded: list[str] = []
        self.rounds = 0
        self._halt = threading.Event()

    def run(self) -> None:
        announced = False
        while True:
            loaded = self._load_once()
            if loaded and not announced:
                announced = True
                logger.info("%s: studio plugins loaded at start: %s", self.process, ", ".join(loaded))
            if self._halt.wait(self.interval_s):
                return

    def _load_once(self) -> list[str]:
        from .runtime import plugins_load_at_start

        close_old_connections()
        try:
            self.loaded = plugins_load_at_start()
        except Exception as exc:  # database not reachable yet, ...: the next round retries
            logger.warning("%s: loading the plugins that receive events failed (%s); retrying", self.process, exc)
        finally:
            close_old_connections()
            self.rounds += 1
        return self.loaded

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current round (tests; a process exiting just drops the daemon thread)."""
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout_s)


def plugins_preload_start(process: str, interval_s: float = PRELOAD_INTERVAL_S) -> PluginPreloader:
    """Start this process's preloader (once; a second call returns the running one)."""
    global _started
    with _started_lock:
        if _started is None or not _started.is_alive():
            _started = PluginPreloader(process, interval_s)
            _started.start()
        return _started
