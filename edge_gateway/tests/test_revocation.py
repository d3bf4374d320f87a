"""What the snapshot says about users reaches every request: a deactivated user's keys and their apps' keys are
refused (401), a user outside every group that grants a catalogued LLM is refused that LLM (403), an expired key
is refused by its `expires_at` alone (no new snapshot needed; the e2e test lets one expire while edges serve)."""

from __future__ import annotations

import time

import httpx

from shared_sdk.snapshot import CredentialConfig, hash_credential

from .support import AppConfig, UserConfig, llm, make_snapshot, run_edge

GROUP = 3


def _key(name: str) -> str:
    return f"fjg_test_{name}"


def _chat(edge, key: str, model: str = "granted/mock-gpt") -> tuple[int, str]:
    response = httpx.post(
        f"{edge.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )
    body = response.json()
    return response.status_code, body.get("error", {}).get("code", "") if response.status_code != 200 else ""


def test_inactive_users_lost_grants_and_expired_keys_are_refused(upstream, tmp_path):
    users = [
        UserConfig(id=7, group_ids=[GROUP]),
        UserConfig(id=8, group_ids=[GROUP], active=False),
        UserConfig(id=9, group_ids=[]),
        UserConfig(id=10, group_ids=[], is_admin=True),
    ]
    apps = [AppConfig(id=1, name="shared", llm_ids=[1, 2]), AppConfig(id=2, name="of-8", owner_id=8, llm_ids=[1])]
    keys = {"member": 7, "inactive": 8, "outsider": 9, "admin": 10, "app-only": None}
    credentials = [
        CredentialConfig(key_hash=hash_credential(_key(name)), app_id=1, credential_id=i, user_id=user)
        for i, (name, user) in enumerate(keys.items(), start=1)
    ]
    credentials += [
        CredentialConfig(key_hash=hash_credential(_key("owner-inactive")), app_id=2, credential_id=20),
        CredentialConfig(
            key_hash=hash_credential(_key("expired")), app_id=1, credential_id=21, expires_at=time.time() - 1.0
        ),
        CredentialConfig(
            key_hash=hash_credential(_key("expires-later")), app_id=1, credential_id=22, expires_at=time.time() + 3600
        ),
    ]
    snapshot = make_snapshot(
        upstream,
        llms=[
            llm(1, "granted", f"{upstream}/v1", granted_group_ids=[GROUP]),
            llm(2, "open", f"{upstream}/v1"),
        ],
        apps=apps,
        users=users,
        credentials=credentials,
    )
    with run_edge(snapshot, tmp_path) as edge:
        assert _chat(edge, _key("member")) == (200, "")
        assert _chat(edge, _key("admin")) == (200, "")
        assert _chat(edge, _key("app-only")) == (200, ""), "no user, no owner: the app link alone decides"
        assert _chat(edge, _key("inactive")) == (401, "invalid_api_key")
        assert _chat(edge, _key("owner-inactive")) == (401, "invalid_api_key"), "the app's owner is deactivated"
        assert _chat(edge, _key("outsider")) == (403, "llm_not_granted")
        assert _chat(edge, _key("outsider"), model="open/mock-gpt") == (200, ""), "an LLM in no catalogue"
        assert _chat(edge, _key("expires-later")) == (200, "")
        # still in the snapshot (the control plane has not removed it): the edge reads expires_at itself
        assert _chat(edge, _key("expired")) == (401, "invalid_api_key")
