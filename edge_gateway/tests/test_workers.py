"""The multi-worker edge's parts: the supervisor's restart, give-up and drain rules (with small stand-in worker
programs), EDGE_WORKERS / EDGE_WORKER_INDEX settings, and `/metrics` merging the workers' series."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from edge_gateway import workers
from edge_gateway.settings import EdgeSettings, default_workers, load_settings
from edge_gateway.worker_metrics import merge_expositions
from fjordgate.env import ConfigError


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(workers, "BACKOFF_INITIAL_S", 0.01)
    monkeypatch.setattr(workers, "DRAIN_S", 5.0)


def _supervisor(tmp_path, program: str, count: int = 2) -> workers.Supervisor:
    settings = EdgeSettings(workers=count, state_dir=str(tmp_path), snapshot_file="x")
    supervisor = workers.Supervisor(settings)
    supervisor.command = [sys.executable, "-c", program]
    return supervisor


def _signal_later(seconds: float, signum: int = signal.SIGTERM) -> None:
    threading.Timer(seconds, os.kill, (os.getpid(), signum)).start()


def test_a_worker_that_keeps_crashing_at_start_stops_the_edge_with_exit_1(tmp_path, fast):
    supervisor = _supervisor(tmp_path, "raise SystemExit(1)")
    started = time.monotonic()
    assert supervisor.run() == 1
    assert supervisor.restarts >= workers.MAX_START_CRASHES - 1, "restarted with backoff, then gave up"
    assert time.monotonic() - started < 10


def test_a_worker_refusing_its_configuration_stops_the_edge_at_once_with_exit_2(tmp_path, fast):
    supervisor = _supervisor(tmp_path, "raise SystemExit(2)")
    assert supervisor.run() == 2
    assert supervisor.restarts == 0


def test_a_worker_that_dies_after_serving_is_restarted_and_sigterm_drains_all(tmp_path, fast, monkeypatch):
    """Workers that ran past the start grace are restarted however often they die; SIGTERM reaches every worker
    (the stand-in exits 0 on it) and the supervisor exits 0."""
    monkeypatch.setattr(workers, "START_GRACE_S", 0.05)
    program = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "time.sleep(0.3)\n"
        "if os.environ['EDGE_WORKER_INDEX'] == '0': sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    supervisor = _supervisor(tmp_path, program)
    _signal_later(2.5)
    assert supervisor.run() == 0
    assert supervisor.restarts >= 3, "worker 0 restarted each time it died"
    assert all(w.proc is None or w.proc.poll() is not None for w in supervisor.workers), "no worker left running"


def test_a_worker_that_does_not_drain_is_killed_and_the_exit_says_so(tmp_path, fast, monkeypatch):
    monkeypatch.setattr(workers, "DRAIN_S", 0.5)
    program = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"
    supervisor = _supervisor(tmp_path, program, count=1)
    _signal_later(0.5)
    assert supervisor.run() == 1


def test_worker_settings_from_the_environment(tmp_path):
    base = {"EDGE_SNAPSHOT_FILE": __file__, "EDGE_STATE_DIR": str(tmp_path), "EDGE_ID": "e1"}
    assert load_settings(base).workers == default_workers() == len(os.sched_getaffinity(0))
    single = load_settings({**base, "EDGE_WORKERS": "1"})
    assert (single.workers, single.worker, single.state_dir) == (1, "", str(tmp_path))
    worker = load_settings({**base, "EDGE_WORKERS": "3", "EDGE_WORKER_INDEX": "2"})
    assert (worker.workers, worker.worker, worker.state_dir) == (3, "2", os.path.join(str(tmp_path), "2"))
    assert workers.metrics_dir(worker) == workers.metrics_dir(load_settings({**base, "EDGE_WORKERS": "3"}))
    for env, name in (
        ({"EDGE_WORKERS": "0"}, "EDGE_WORKERS"),
        ({"EDGE_WORKERS": "2", "EDGE_WORKER_INDEX": "2"}, "EDGE_WORKER_INDEX"),
        ({"EDGE_WORKERS": "2", "EDGE_WORKER_INDEX": "-1"}, "EDGE_WORKER_INDEX"),
        ({"EDGE_WORKERS": "2", "EDGE_ID": "e" * 60}, "EDGE_ID"),
    ):
        with pytest.raises(ConfigError, match=name):
            load_settings({**base, **env})


def test_two_workers_can_bind_the_same_port_and_another_program_cannot_share_it():
    first = workers.reuseport_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = workers.reuseport_socket("127.0.0.1", port)
    first.listen()
    second.listen()
    first.close()
    second.close()
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        with pytest.raises(OSError):
            workers.reuseport_socket("127.0.0.1", holder.getsockname()[1])
    finally:
        holder.close()


def test_metrics_of_the_workers_merge_into_one_exposition_with_a_worker_label():
    from edge_gateway.metrics import EdgeMetrics

    texts = {}
    for worker, requests in (("0", 2), ("1", 5)):
        metrics = EdgeMetrics()
        metrics.requests.labels("1", "llm", "m", "200").inc(requests)
        metrics.latency.labels("1", "llm", "m").observe(0.02)
        metrics.config_version.set(7)
        texts[worker] = metrics.render().decode()
    merged = merge_expositions(texts).decode()
    assert merged.count("# TYPE fjordgate_edge_requests_total counter") == 1, "one family, not one per worker"
    assert 'fjordgate_edge_requests_total{app="1",llm="llm",model="m",status="200",worker="0"} 2.0' in merged
    assert 'fjordgate_edge_requests_total{app="1",llm="llm",model="m",status="200",worker="1"} 5.0' in merged
    assert 'fjordgate_edge_config_version{worker="1"} 7.0' in merged
    assert 'fjordgate_edge_request_duration_seconds_bucket{app="1",le="0.025",llm="llm",model="m",worker="0"} 1.0' in (
        merged
    )
    from prometheus_client.parser import text_string_to_metric_families

    assert {f.name for f in text_string_to_metric_families(merged)} >= {"fjordgate_edge_requests"}
