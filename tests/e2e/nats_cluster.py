"""A three-node NATS JetStream cluster of real nats-server processes (fjordgate.embedded.nats_cluster_plans), whose
nodes a test can SIGKILL and bring back one by one. `url` names every node, as edges and bridges are given it."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import nats

from fjordgate.embedded import ServerPlan, as_user, free_port, nats_cluster_plans

NODES = 3


class NatsCluster:
    def __init__(self) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="fj-nats-cluster-"))
        self.ports = [free_port() for _ in range(NODES)]
        self.plans: list[ServerPlan] = nats_cluster_plans(
            self.state_dir, self.ports, [free_port() for _ in range(NODES)]
        )
        self._processes: list[subprocess.Popen | None] = [None] * NODES

    @property
    def url(self) -> str:
        return self.plans[0].url

    def node_url(self, index: int) -> str:
        return self.url.split(",")[index]

    def start(self, timeout: float = 60) -> NatsCluster:
        for index in range(NODES):
            self.start_node(index)
        deadline = time.monotonic() + timeout
        while not asyncio.run(self._jetstream_ready()):  # the cluster has elected its JetStream meta leader
            if time.monotonic() > deadline:
                raise RuntimeError(f"the NATS cluster's JetStream not ready within {timeout:.0f}s")
            time.sleep(0.2)
        return self

    def start_node(self, index: int) -> None:
        plan = self.plans[index]
        log = open(self.state_dir / f"node-{index}.log", "ab")  # noqa: SIM115 - the child keeps it
        with log:
            self._processes[index] = subprocess.Popen(
                plan.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **as_user(plan.user)
            )
        plan.wait_ready(30, is_alive=lambda: self._processes[index].poll() is None)

    def kill_node(self, index: int) -> None:
        """SIGKILL: no shutdown, no hand-over of stream leadership."""
        process = self._processes[index]
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        self._processes[index] = None

    def node_named(self, server_name: str) -> int:
        return int(server_name.removeprefix("fjordgate_"))

    def stream_info(self, stream: str, timeout: float = 30):
        """The stream's info from whichever node answers; retried while the cluster elects leaders."""

        async def info():
            nc = await nats.connect(servers=self.url.split(","), connect_timeout=2)
            try:
                return await nc.jetstream(timeout=5).stream_info(stream)
            finally:
                await nc.close()

        deadline = time.monotonic() + timeout
        while True:
            try:
                return asyncio.run(info())
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    async def _jetstream_ready(self) -> bool:
        try:
            nc = await nats.connect(servers=self.url.split(","), connect_timeout=2, max_reconnect_attempts=0)
        except Exception:
            return False
        try:
            await nc.jetstream(timeout=2).account_info()
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    def cleanup(self) -> None:
        for index in range(NODES):
            self.kill_node(index)
        shutil.rmtree(self.state_dir, ignore_errors=True)
