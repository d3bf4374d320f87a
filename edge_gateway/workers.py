"""`EDGE_WORKERS=N` (`fjordgate edge --workers N`): one edge on every core, N processes on one port.

Why processes and `SO_REUSEPORT`: the edge's request path is Python on one event loop, so one process uses one
core. With `SO_REUSEPORT` each worker opens its own listening socket on the same host:port and the kernel spreads
new connections over them (by a hash of the connection's addresses), so no process sits in front of the
workers copying bytes, and a worker that dies takes only its own connections with it.

The supervisor (this module, the process an operator starts) binds nothing and imports neither uvicorn nor the
app: it starts the workers (`python -m edge_gateway` with `EDGE_WORKER_INDEX`), restarts one that dies (after a
backoff that doubles while it keeps dying at start), forwards SIGTERM/SIGINT so every worker drains gracefully,
and exits non-zero when a worker keeps crashing at start (a port another program holds, a broken plugin) instead
of restarting it for ever. Each worker keeps its own state (`<EDGE_STATE_DIR>/<index>`: spool, KV, persisted
snapshot, stored responses), so no SQLite file has writers in two processes; it is the same edge to the control
plane (its heartbeats carry the edge id and the worker index, docs/edge.md#workers).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

from .settings import EdgeSettings

__all__ = ["Supervisor", "metrics_dir", "reuseport_socket"]

log = logging.getLogger("fjordgate.edge.workers")

START_GRACE_S = 10.0
"""A worker that exits sooner than this after its start crashed at start (rather than after serving)."""
MAX_START_CRASHES = 5
"""Consecutive crashes at start of one worker after which the supervisor gives up and exits 1."""
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
DRAIN_S = 20.0
"""How long workers get to drain after SIGTERM (uvicorn's 10 s graceful shutdown, then telemetry and spool
close) before the supervisor kills what is left."""
CONFIG_ERROR_EXIT = 2
"""`fjordgate.env.fail`'s code: a worker that exits with it at start will not do better on a restart."""


def metrics_dir(settings: EdgeSettings) -> str:
    """Where the workers of an edge leave their metrics for each other (`worker_metrics.py`)."""
    return os.path.join(settings.edge_state_dir, "metrics")


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port that the edge's other workers may bind too (SO_REUSEPORT); uvicorn listens."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)  # now, so a port held by another program fails the worker at once
    except OSError:
        sock.close()
        raise
    # No listen() here: uvicorn's server calls it after the app's start-up, so the kernel hands this worker
    # connections only once it can answer them (a listening socket joins SO_REUSEPORT's group at once, and a
    # restarting worker would otherwise hold its share of new connections through its whole start-up).
    return sock


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the supervisor dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    crashes: int = 0
    """Consecutive crashes at start."""
    restart_at: float | None = None


class Supervisor:
    """Starts, watches and stops the worker processes of one edge (see the module docstring)."""

    def __init__(self, settings: EdgeSettings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.workers = [_Worker(i) for i in range(settings.workers)]
        self.command = [sys.executable, "-m", "edge_gateway"]
        """What a worker runs (its index in EDGE_WORKER_INDEX); tests substitute a small program."""
        self.restarts = 0
        self._signal: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (then 0 when every worker drained cleanly) or a worker crash loop (1)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        shutil.rmtree(metrics_dir(self.settings), ignore_errors=True)  # a previous run's workers' figures
        log.info(
            "edge %s: starting %d workers on %s:%d",
            self.settings.edge_id,
            len(self.workers),
            self.settings.host,
            self.settings.port,
        )
        for worker in self.workers:
            self._start(worker)
        while self._signal is None:
            failed = self._watch()
            if failed:
                self._stop_all(signal.SIGTERM)
                return failed
            time.sleep(0.1)
        return self._stop_all(self._signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._signal is None:
            self._signal = signum
            return
        for worker in self.workers:  # a second Ctrl-C: pass it on (uvicorn then stops without waiting)
            if worker.proc is not None and worker.proc.poll() is None:
                worker.proc.send_signal(signum)

    def _start(self, worker: _Worker) -> None:
        env = {**self.environ, "EDGE_WORKER_INDEX": str(worker.index), "EDGE_WORKERS": str(len(self.workers))}
        worker.proc = subprocess.Popen(self.command, env=env, preexec_fn=_die_with_parent)
        worker.started_at = time.monotonic()
        worker.restart_at = None
        log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)

    def _watch(self) -> int:
        """Reap and restart dead workers; the exit code to stop with when one keeps crashing at start, else 0."""
        now = time.monotonic()
        for worker in self.workers:
            if worker.proc is None:
                if worker.restart_at is not None and now >= worker.restart_at:
                    self._start(worker)
                continue
            code = worker.proc.poll()
            if code is None:
                continue
            failed = self._died(worker, code, now)
            if failed:
                return failed
        return 0

    def _died(self, worker: _Worker, code: int, now: float) -> int:
        assert worker.proc is not None
        pid, lived = worker.proc.pid, now - worker.started_at
        worker.proc = None
        at_start = lived < START_GRACE_S
        worker.crashes = worker.crashes + 1 if at_start else 0
        if at_start and code == CONFIG_ERROR_EXIT:
            log.error("worker %d (pid %d) refused its configuration (exit %d): stopping", worker.index, pid, code)
            return CONFIG_ERROR_EXIT
        if worker.crashes >= MAX_START_CRASHES:
            log.error(
                "worker %d crashed at start %d times in a row (last exit %s): stopping the edge",
                worker.index,
                worker.crashes,
                code,
            )
            return 1
        delay = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2**worker.crashes)
        worker.restart_at = now + delay
        self.restarts += 1
        log.warning(
            "worker %d (pid %d) exited with %s after %.1f s; restarting it in %.1f s",
            worker.index,
            pid,
            code,
            lived,
            delay,
        )
        return 0

    def _stop_all(self, signum: int) -> int:
        """Forward `signum` to every live worker, wait for them to drain, kill the rest; 0 if all drained."""
        running = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        log.info("stopping %d workers (%s)", len(running), signal.Signals(signum).name)
        for proc in running:
            proc.send_signal(signum)
        deadline = time.monotonic() + DRAIN_S
        code = 0
        for proc in running:
            try:
                rc = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not drain in %.0f s: killing it", proc.pid, DRAIN_S)
                proc.kill()
                rc = proc.wait()
            if rc not in (0, -signum):  # uvicorn re-raises the signal it drained on: dying by it is a clean exit
                log.error("worker pid %d exited with %s while draining", proc.pid, rc)
                code = 1
        return code
