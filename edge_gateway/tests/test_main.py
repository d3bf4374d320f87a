"""`python -m edge_gateway`: one clear line on bad configuration, and a working edge from a snapshot file."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from .support import CLIENT_KEY, edge_process_env, free_port, make_snapshot, wait_http


def test_bad_config_gives_one_line_and_exit_2():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "NATS_"))}
    env["EDGE_PORT"] = "not-a-port"
    env["EDGE_SNAPSHOT_FILE"] = "/nonexistent/snapshot.json"
    done = subprocess.run([sys.executable, "-m", "edge_gateway"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "EDGE_SNAPSHOT_FILE" in lines[0] and "Traceback" not in done.stderr


def test_runs_from_a_snapshot_file(upstream, tmp_path):
    port = free_port()
    env = edge_process_env(make_snapshot(upstream), tmp_path, port)
    proc = subprocess.Popen([sys.executable, "-m", "edge_gateway"], env=env, stderr=subprocess.PIPE)
    try:
        wait_http(f"http://127.0.0.1:{port}/ready")
        ready = httpx.get(f"http://127.0.0.1:{port}/ready").json()
        assert ready["version"] == 1 and ready["namespace"] == "test"
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == 200
        assert (tmp_path / "state" / "snapshot.json").is_file()  # kept for a restart without the control plane
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
