"""The supervisor behind `fjordgate up`: prefixed logs, deaths reported, whole process trees stopped in order."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
import uuid

from fjordgate.supervisor import Supervisor
from tests.support.processes import find_processes

# A child that starts a grandchild (like Celery's pool or uvicorn's workers) and ignores SIGTERM itself, so only
# the process-group kill can clean it up.
SPAWNS_GRANDCHILD = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, lambda *_: print("parent ignores SIGTERM", flush=True))
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print("started grandchild", flush=True)
time.sleep(300)
"""

RECORDS_ITS_STOP = """
import signal, sys, time
name = sys.argv[1]
def stop(*_):
    with open(sys.argv[2], "a") as fh:
        fh.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print(name, "up", flush=True)
time.sleep(300)
"""


def test_stop_all_kills_grandchildren_of_a_child_that_ignores_sigterm(monkeypatch) -> None:
    marker = uuid.uuid4().hex
    monkeypatch.setenv("FJORDGATE_TEST_MARK", marker)
    sup = Supervisor(io.StringIO(), colour=False, stop_timeout=1.0)
    proc = sup.start(
        "tree", [sys.executable, "-c", SPAWNS_GRANDCHILD], env=dict(os.environ), ready_log="started grandchild"
    )
    sup.wait_ready(proc, None, 30, "its log line")
    assert len(find_processes(("FJORDGATE_TEST_MARK", marker))) == 2
    sup.stop_all()
    assert find_processes(("FJORDGATE_TEST_MARK", marker)) == []
    assert "parent ignores SIGTERM" in sup.out.getvalue()


def test_stop_order_is_reverse_start_order_tier_by_tier(tmp_path) -> None:
    record = tmp_path / "stopped.txt"
    sup = Supervisor(io.StringIO(), colour=False)
    started = {}
    for name in ("postgres", "nats", "web", "edge-1"):
        started[name] = sup.start(
            name, [sys.executable, "-c", RECORDS_ITS_STOP, name, str(record)], ready_log=f"{name} up"
        )
    for proc in started.values():
        sup.wait_ready(proc, None, 30, "its log line")
    sup.stop_all([[started["edge-1"], started["web"]], [started["nats"], started["postgres"]]])
    stopped = record.read_text().split()
    assert set(stopped[:2]) == {"edge-1", "web"} and set(stopped[2:]) == {"nats", "postgres"}
    assert all(not proc.alive() for proc in started.values())


def test_output_is_prefixed_and_a_death_is_reported_with_exit_code_and_last_lines() -> None:
    out = io.StringIO()
    sup = Supervisor(out, colour=False)
    sup.start(
        "steady",
        [sys.executable, "-c", "import time; print('steady up', flush=True); time.sleep(300)"],
        ready_log="steady up",
    )
    doomed = sup.start(
        "doomed", [sys.executable, "-c", "import sys, time; time.sleep(0.5); print('about to fail'); sys.exit(3)"]
    )
    try:
        dead = sup.watch()
        assert dead is doomed
        report = sup.death_report(dead)
        assert "doomed" in report and "exit code 3" in report and "about to fail" in report
        assert "doomed     | about to fail" in out.getvalue()
        assert "steady     | steady up" in out.getvalue()
    finally:
        sup.stop_all()


def test_watch_returns_none_when_a_stop_is_requested() -> None:
    sup = Supervisor(io.StringIO(), colour=False)
    sup.start("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        started = time.monotonic()
        signal.signal(signal.SIGALRM, lambda *_: sup.request_stop())
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        assert sup.watch() is None
        assert time.monotonic() - started < 5
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        sup.stop_all()
