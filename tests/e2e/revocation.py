"""Revocation scenarios against running edges, shared by `test_processes_revocation.py` and
`bench/bench_revocation.py`: each kind gets its own victim (user, app, key, LLM) so the kinds do not interfere.

For each victim: `arm()` (the expiring key is created only then), wait until every edge answers the victim 200,
`revoke()` commits the change through the service layer (what the admin and the API call) and returns the
moment it was committed (for an expiring key: its `expires_at`, no write at all), then every edge is probed in
its own thread until it refuses; the latency is from that moment to the first refusing answer received.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from .cluster import MODEL, http

KINDS = ("user_deactivated", "group_grant_removed", "app_deactivated", "key_revoked", "key_expired", "llm_deleted")
EXPIRY_AHEAD_S = 5.0  # time to reach both edges under load before it expires
PROBE_EVERY_S = 0.02


@dataclass
class Victim:
    kind: str
    key: str
    model: str
    refused: tuple[int, ...]
    revoke: Callable[[], float]
    arm: Callable[[], None] = lambda: None
    latencies_ms: dict[str, float] = field(default_factory=dict)


def _chat(url: str, key: str, model: str) -> int:
    status, _, _ = http(
        "POST",
        f"{url}/v1/chat/completions",
        body={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    return status


def seed_victims(namespace: str, mock_url: str, base_llm_id: int) -> list[Victim]:
    """One victim per kind in `namespace`, whose LLM `base_llm_id` serves MODEL (through the services)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from control_plane.accounts.services import catalogue_set, group_save, user_create, user_update
    from control_plane.applications.models import App, Credential
    from control_plane.applications.services import (
        app_create,
        app_update,
        credential_create,
        credential_revoke,
    )
    from control_plane.llms.models import LLM
    from control_plane.llms.services import llm_create, llm_delete

    tag = uuid.uuid4().hex[:6]
    base = LLM.objects.get(pk=base_llm_id)

    def llm(slug: str):
        return llm_create(
            data={
                "name": slug,
                "slug": slug,
                "vendor": "mock",
                "api_endpoint": mock_url,
                "default_model": MODEL,
                "allowed_models": [MODEL],
                "namespace": namespace,
                "is_active": True,
                "max_retries": 0,
            }
        )

    def app(name: str, llm_obj, owner=None):
        data = {"name": f"{name}-{tag}", "namespace": namespace, "approved": True, "is_active": True}
        data.update(llm_ids=[llm_obj.pk], owner_id=owner.pk if owner else None)
        return app_create(data=data)

    def committed() -> float:
        return time.perf_counter()

    victims: list[Victim] = []
    slug_model = f"{base.slug}/{MODEL}"

    owner = user_create(data={"username": f"owner-{tag}", "is_active": True})
    _, key = credential_create(app=app("owned", base, owner))

    def deactivate_user() -> float:
        user_update(user=get_user_model().objects.get(pk=owner.pk), data={"is_active": False})
        return committed()

    victims.append(Victim("user_deactivated", key, slug_model, (401,), deactivate_user))

    granted = llm(f"granted-{tag}")
    group = group_save(name=f"team-{tag}")
    catalogue_set(group=group, llm_ids=[granted.pk])
    member = user_create(data={"username": f"member-{tag}", "is_active": True, "groups": [group.name]})
    _, key = credential_create(app=app("member", granted, member))

    def remove_from_group() -> float:
        user_update(user=get_user_model().objects.get(pk=member.pk), data={"groups": []})
        return committed()

    victims.append(Victim("group_grant_removed", key, f"{granted.slug}/{MODEL}", (403,), remove_from_group))

    doomed_app = app("deactivated", base)
    _, key = credential_create(app=doomed_app)

    def deactivate_app() -> float:
        app_update(app=App.objects.get(pk=doomed_app.pk), data={"is_active": False})
        return committed()

    victims.append(Victim("app_deactivated", key, slug_model, (401,), deactivate_app))

    revoked, key = credential_create(app=app("revoked", base))

    def revoke_key() -> float:
        credential_revoke(credential=Credential.objects.get(pk=revoked.pk))
        return committed()

    victims.append(Victim("key_revoked", key, slug_model, (401,), revoke_key))

    expiring_app = app("expiring", base)
    expiring = Victim("key_expired", "", slug_model, (401,), committed)

    def arm_expiry() -> None:
        expires = timezone.now() + timedelta(seconds=EXPIRY_AHEAD_S)
        _, expiring.key = credential_create(app=expiring_app, expires_at=expires)
        at = time.perf_counter() + (expires - timezone.now()).total_seconds()

        def wait_for_expiry() -> float:
            time.sleep(max(0.0, at - time.perf_counter()))
            return at

        expiring.revoke = wait_for_expiry

    expiring.arm = arm_expiry
    victims.append(expiring)

    doomed = llm(f"doomed-{tag}")
    _, key = credential_create(app=app("llm-gone", doomed))

    def delete_llm() -> float:
        llm_delete(llm=LLM.objects.get(pk=doomed.pk))
        return committed()

    victims.append(Victim("llm_deleted", key, f"{doomed.slug}/{MODEL}", (403, 404), delete_llm))
    return victims


def run_victim(victim: Victim, edge_urls: dict[str, str], *, timeout_s: float = 15.0) -> dict[str, float]:
    """Arm, wait for 200 at every edge, revoke, and time each edge's first refusal (ms). Raises on a timeout
    or on any answer other than 200 before / the expected refusal after."""
    victim.arm()
    for name, url in edge_urls.items():
        deadline = time.monotonic() + timeout_s
        while (status := _chat(url, victim.key, victim.model)) != 200:
            if time.monotonic() > deadline:
                raise AssertionError(f"{victim.kind}: {name} never served the victim (last {status})")
            time.sleep(0.05)
    started = victim.revoke()
    errors: list[str] = []

    def probe(name: str, url: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = _chat(url, victim.key, victim.model)
            if status in victim.refused:
                victim.latencies_ms[name] = (time.perf_counter() - started) * 1000
                return
            if status != 200:
                errors.append(f"{victim.kind}: {name} answered {status}, expected {victim.refused}")
                return
            time.sleep(PROBE_EVERY_S)  # a probe is a real request (upstream call, telemetry): do not flood
        errors.append(f"{victim.kind}: {name} still served the victim after {timeout_s:.0f}s")

    threads = [threading.Thread(target=probe, args=item) for item in edge_urls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise AssertionError("; ".join(errors))
    return victim.latencies_ms
