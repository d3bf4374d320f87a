"""`python manage.py run_bridge`: the control plane's only NATS-speaking process (see control_plane.bridge)."""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand

from fjordgate.env import ConfigError, env_float, env_int, env_str


class Command(BaseCommand):
    help = "Run the bridge between the control plane and the edges (NATS JetStream)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--health-host", default=None, help="default: BRIDGE_HEALTH_HOST or 0.0.0.0")
        parser.add_argument("--health-port", type=int, default=None, help="default: BRIDGE_HEALTH_PORT or 8010")

    def handle(self, *args, **options) -> None:
        from control_plane.bridge.runner import Bridge

        try:
            host = options["health_host"] or env_str("BRIDGE_HEALTH_HOST", "0.0.0.0")
            port = options["health_port"] or env_int("BRIDGE_HEALTH_PORT", 8010, minimum=1, maximum=65535)
            poll_ms = env_float("BRIDGE_POLL_INTERVAL_MS", 100.0, minimum=5.0)
            max_attempts = env_int("BRIDGE_OUTBOX_MAX_ATTEMPTS", 8, minimum=1, maximum=1000)
            backoff_s = env_float("BRIDGE_OUTBOX_BACKOFF_S", 2.0, minimum=0.0)
        except ConfigError as exc:
            from fjordgate.env import fail

            fail(f"configuration error: {exc}")
        bridge = Bridge(
            health_host=host,
            health_port=port,
            poll_interval_s=poll_ms / 1000,
            outbox_max_attempts=max_attempts,
            outbox_backoff_s=backoff_s,
        )
        asyncio.run(bridge.run())
