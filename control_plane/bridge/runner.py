"""The bridge process: connects to NATS, declares the streams, runs every duty until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from contextlib import suppress

import nats
from django.conf import settings
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from control_plane.edges.models import PublishedConfig
from control_plane.edges.services import edge_mark_stale
from shared_sdk.sync_protocol import KEY_MANIFEST, UP_STREAM, UP_STREAM_SUBJECTS
from shared_sdk.tasks import cancel_and_wait, finish_uninterrupted

from .budgets import BudgetPublisher
from .config_publisher import ConfigPublisher
from .connection import connect_options, nats_connect
from .db import run_db
from .events import EventRelay
from .health import HealthServer, HealthWatch
from .heartbeats import HeartbeatReceiver
from .leader import LeaderLease
from .leases import LeaseResponder
from .outboxes import pending_outboxes
from .payloads import PayloadReceiver
from .pull_consumer import FETCH_TIMEOUT_S
from .reloads import publish_reloads
from .telemetry import TelemetryIngestor

log = logging.getLogger("fjordgate.bridge")

UP_STREAM_MAX_AGE_S = 7 * 24 * 3600
CONSUMER_GRACE_S = FETCH_TIMEOUT_S + 2.0
"""How long a stopping bridge lets its consumers finish their fetch (at most its timeout) and commit it; then it
cancels them, so a stop is bounded whatever the database or NATS is doing."""


async def ensure_up_stream(js: JetStreamContext) -> None:
    """FJ_UP: work-queue retention (a message is gone once acknowledged), dedup window for replays."""
    config = StreamConfig(
        name=UP_STREAM,
        subjects=UP_STREAM_SUBJECTS,
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=120,
        max_age=UP_STREAM_MAX_AGE_S,
        num_replicas=settings.NATS_REPLICAS,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)


async def _connect_with_retry() -> Client:
    """nats-py gives up on a failed first connect; the bridge may start before NATS, so we keep trying."""
    while True:
        try:
            return await nats_connect()
        except (OSError, nats.errors.NoServersError, nats.errors.TimeoutError) as exc:
            log.warning("NATS at %s not reachable (%s); retrying", connect_options()["servers"], exc)
            await asyncio.sleep(1)


class Bridge:
    def __init__(
        self,
        *,
        health_port: int,
        health_host: str = "0.0.0.0",
        poll_interval_s: float = 0.1,
        bridge_id: str | None = None,
        outbox_max_attempts: int = 8,
        outbox_backoff_s: float = 2.0,
    ) -> None:
        """`health_host` defaults to every interface so an orchestrator's probe reaches the bridge inside a
        container; BRIDGE_HEALTH_HOST (read by `run_bridge`) narrows it, e.g. to 127.0.0.1 on a shared host."""
        self.bridge_id = bridge_id or f"{socket.gethostname()}-{os.getpid()}"
        self._health_host = health_host
        self._health_port = health_port
        self._poll_interval_s = poll_interval_s
        self._outbox_max_attempts = outbox_max_attempts
        self._outbox_backoff_s = outbox_backoff_s
        self._stop = asyncio.Event()
        self.watch = HealthWatch()
        self._nc: Client | None = None
        self._plugins_announced = False
        self.leader: LeaderLease | None = None
        self.publisher: ConfigPublisher | None = None
        self.telemetry: TelemetryIngestor | None = None
        self.events: EventRelay | None = None
        self.started_at = time.time()

    def status(self) -> dict:
        nats_connected = bool(self._nc is not None and self._nc.is_connected)
        reasons = self.watch.problems(nats_connected=nats_connected)
        return {
            "status": "unhealthy" if reasons else "ok",
            "reasons": reasons,
            "bridge_id": self.bridge_id,
            "nats_connected": nats_connected,
            "database_reachable": self.watch.database_error is None,
            "leader": bool(self.leader and self.leader.is_leader),
            "uptime_s": round(time.time() - self.started_at, 1),
            "telemetry_batches": self.telemetry.batches if self.telemetry else 0,
            "records_inserted": self.telemetry.records_inserted if self.telemetry else 0,
            "records_refused": self.telemetry.records_refused if self.telemetry else 0,
            "telemetry_lag_seconds": round(self.telemetry.lag_s, 3) if self.telemetry else 0.0,
            "configs_published": self.publisher.published if self.publisher else 0,
            "config_publish_failures": self.publisher.failures if self.publisher else 0,
            "config_changes_dead_lettered": self.publisher.dead_lettered if self.publisher else 0,
            "leader_duty_failures": self.watch.leader_failures_total,
            "events_down": self.events.sent if self.events else 0,
            "events_up": self.events.received if self.events else 0,
        }

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread() and sys.platform != "win32":
            # Only the main thread of a Unix process can take signals; tests run the bridge in a thread and stop
            # it with stop() instead.
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        health = HealthServer(self._health_port, self.status, host=self._health_host)
        await health.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._serve(tasks)
        finally:
            # Also when this coroutine is cancelled (a supervisor's timeout), during start-up too: no task, NATS
            # subscription or listener outlives the bridge. A second cancellation does not cut the shutdown short
            # (a bridge left half-stopped kept answering lease asks on the NATS server it shared).
            await finish_uninterrupted(self._shut_down(tasks, health))

    async def _serve(self, tasks: list[asyncio.Task[None]]) -> None:
        """Connect, subscribe and start the bridge's tasks (appended to `tasks` as they start), then wait for `stop`."""
        self._nc = nc = await _connect_with_retry()
        js = nc.jetstream(timeout=10)
        await ensure_up_stream(js)
        self.leader = LeaderLease(js, self.bridge_id)
        self.publisher = ConfigPublisher(
            js,
            connected=lambda: nc.is_connected,
            max_attempts=self._outbox_max_attempts,
            backoff_s=self._outbox_backoff_s,
        )
        budgets = BudgetPublisher(js)
        self.telemetry = TelemetryIngestor(js, on_ingested=budgets.mark_dirty)
        payloads = PayloadReceiver(js)
        await HeartbeatReceiver(nc).start()
        await LeaseResponder(nc).start()
        self.events = EventRelay(nc, self.bridge_id)
        await self._load_plugins_at_start()  # before the relay subscribes: the first event finds them loaded
        await self.events.start()
        consumers = [
            asyncio.create_task(self.telemetry.run(), name="telemetry"),
            asyncio.create_task(payloads.run(), name="payloads"),
        ]
        tasks += [
            *consumers,
            asyncio.create_task(self._session_plugins(), name="plugins-kept-loaded"),
            asyncio.create_task(self.leader.run(), name="leader"),
            asyncio.create_task(budgets.run(), name="budgets"),
            asyncio.create_task(self._leader_duties(nc, payloads), name="leader-duties"),
            asyncio.create_task(self._drain_events(nc), name="events-down"),
            asyncio.create_task(self.watch.watch_database(), name="database-probe"),
        ]
        log.info("bridge ready (id %s, health on %s:%d)", self.bridge_id, self._health_host, self._health_port)
        await self._stop.wait()
        log.info("bridge stopping")
        # The two consumers finish the fetch they are in and acknowledge what it brought (`PullConsumer.stop`):
        # cancelled mid-fetch or mid-commit, a batch they had been sent would be delivered again (to the next
        # bridge) only once the ack wait (30 s) ran out.
        # With the connection down there is nothing to let finish: the server dropped their pull requests with the
        # connection, and no ack could be sent; a fetch would only wait out its timeout. `_shut_down` cancels them
        # (a batch whose commit is under way still commits, in the database's thread; JetStream delivers it again
        # once NATS is back, and its record ids keep it from being stored twice).
        self.telemetry.stop()
        payloads.stop()
        if nc.is_connected:
            await asyncio.wait(consumers, timeout=CONSUMER_GRACE_S)

    async def _shut_down(self, tasks: list[asyncio.Task[None]], health: HealthServer) -> None:
        await cancel_and_wait(tasks)
        if self.leader is not None:
            # The next bridge leads at its next attempt, not after the lease's ttl.
            await self.leader.release(reachable=self._nc is not None and self._nc.is_connected)
        if self._nc is not None:
            await _close_nats(self._nc)
        await health.stop()

    async def _leader_duties(self, nc: Client, payloads: PayloadReceiver) -> None:
        """Publishing config and reloads, marking stale edges, retrying payloads: only the leader does these."""
        assert self.leader is not None and self.publisher is not None
        last_stale_check = last_payload_retry = 0.0
        was_leader = False
        while True:
            await asyncio.sleep(self._poll_interval_s)
            if not self.leader.is_leader or not nc.is_connected:
                was_leader = False
                self.watch.leader_duty_succeeded()  # not ours to do (or NATS is down: reported on its own)
                continue
            try:
                if not was_leader:
                    await self._republish_missing()
                    was_leader = True
                pending = await run_db(pending_outboxes)
                if pending.config:
                    await self.publisher.publish_pending()
                if pending.reloads:
                    await publish_reloads(nc)
                now = time.monotonic()
                if now - last_stale_check > 10:
                    last_stale_check = now
                    await run_db(edge_mark_stale)
                if now - last_payload_retry > 30:
                    last_payload_retry = now
                    await run_db(payloads.retry_once)
                self.watch.leader_duty_succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.watch.leader_duty_failed(exc)
                log.exception("leader duty failed; retrying")
                await asyncio.sleep(1)

    async def _session_plugins(self) -> None:
        """Keep the plugins that receive events or edge payloads loaded here, from start: every bridge hands UP
        events and payloads to them and raises budget alerts for what it ingests, on this process's bus."""
        while True:
            await asyncio.sleep(30)
            await self._load_plugins_at_start()

    async def _load_plugins_at_start(self) -> None:
        from control_plane.plugins.runtime import plugins_load_at_start

        try:
            loaded = await run_db(plugins_load_at_start)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("loading the plugins that receive events or payloads failed (%s); retrying", exc)
        else:
            if loaded and not self._plugins_announced:
                self._plugins_announced = True
                log.info("studio plugins loaded at start: %s", ", ".join(loaded))

    async def _drain_events(self, nc: Client) -> None:
        """Send the event outbox to the edges: the leader only, so events leave in the order they were queued."""
        assert self.leader is not None and self.events is not None
        last_purge = 0.0
        while True:
            await asyncio.sleep(self._poll_interval_s)
            if not self.leader.is_leader or not nc.is_connected:
                continue
            try:
                if (await run_db(pending_outboxes)).events:
                    await self.events.drain_outbox()
                now = time.monotonic()
                if now - last_purge > 3600:
                    last_purge = now
                    await self.events.purge_sent()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sending queued events failed (%s); retrying", exc)
                await asyncio.sleep(1)

    async def _republish_missing(self) -> None:
        """On taking over: a namespace whose bucket lost its manifest (NATS storage wiped) is published again."""
        assert self.publisher is not None
        namespaces = await run_db(lambda: list(PublishedConfig.objects.values_list("namespace", flat=True)))
        for namespace in namespaces:
            state = await self.publisher.bucket(namespace)
            try:
                await state.kv.get(KEY_MANIFEST)
            except NotFoundError:
                log.info("namespace %s has no manifest in NATS; republishing", namespace or "(global)")
                await self.publisher.publish_namespace(namespace)


async def _close_nats(nc: Client, timeout_s: float = 2.0) -> None:
    """Flush what is still buffered (acks of committed batches above all), then close.

    Not `drain()`: nats-py's drain waits on the JetStream pull subscriptions whose fetches were just cancelled
    and hangs until its 30 s timeout, so every stop took that long and supervisors killed the bridge instead.
    An ack lost here is harmless anyway (re-delivery is de-duplicated on record ids); the flush only makes a
    clean stop cheaper for the next bridge.
    """
    with suppress(Exception):
        await nc.flush(timeout=timeout_s)  # type: ignore[arg-type]  # annotated int, used as asyncio's float timeout
    with suppress(Exception):
        await asyncio.wait_for(nc.close(), timeout_s)
