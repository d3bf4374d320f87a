"""The bridge: the one control-plane process that talks to NATS (`python manage.py run_bridge`).

It publishes config snapshots and budget spend down, ingests telemetry and plugin payloads coming up, keeps the
edge registry from heartbeats and forwards reload requests. Several bridges may run at once: the up-consumers
are shared durable JetStream consumers and a queue group (each message handled by one bridge), and the
publishing duties follow a leader lease held in NATS KV.
"""
