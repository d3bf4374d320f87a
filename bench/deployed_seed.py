"""Seed the control plane so a deployed edge serves what `bench_edge.py`'s snapshot-file edge serves, plus governance.

The same as the snapshot (`bench_edge.snapshot`): the LLM `bench` (vendor openai, the same mock upstream, vendor key
`sk-upstream`, model `mock-gpt` allowed and default), the app with the client key `bench_edge.KEY`, the price
(0.15 / 0.6 per million), the request tagger as a global plugin (order 0, same config), the PII redactor and the
text rewriter (a chunk hook that rewrites text) on the LLM's chain, and the request logger as a data collector. Each is made through the control plane's services, as an
operator's API call would, so the edge gets it through the bridge and NATS, not from a file.

On top, what docs/governance.md has an edge do on its request path: an app budget (`block`, monthly, leased, with
headroom no run can spend) and the app's rpm and tpm limits (leased per minute, their counts shared between the
namespace's edges), all set high enough never to refuse during a run, so the edge pays for the checks and the
leases without the benchmark's requests being refused.
"""

from __future__ import annotations

import time
from decimal import Decimal

BUDGET = Decimal("1000000")
"""USD: a request costs ~$0.00005 here, so a run never spends a measurable part of it (the lease needs no top-up)."""
RPM = 10_000_000
TPM = 2_000_000_000
"""Per minute: above what this machine can serve (~3,000 req/s x ~120 tokens bound each), below the field's max."""


def seed_like_snapshot(*, namespace: str, upstream_v1: str, key: str, model: str) -> dict[str, int]:
    """Create (in `namespace`) everything the snapshot edge has, and the governance on; returns the ids made."""
    from control_plane.applications.services import app_create, credential_import
    from control_plane.budgets.services import budget_create
    from control_plane.catalog.models import ModelPrice
    from control_plane.catalog.services import model_price_upsert
    from control_plane.llms.services import llm_create, llm_set_plugin_chain
    from control_plane.plugins.models import Plugin
    from control_plane.plugins.services import plugin_register

    def plugin(slug: str, name: str, import_path: str, **extra: object) -> Plugin:
        found = Plugin.objects.filter(slug=slug).first()
        data = {"slug": slug, "name": name, "import_path": import_path, "namespace": namespace, **extra}
        return found or plugin_register(data=data)

    plugin(
        "request-tagger",
        "tagger",
        "plugins.request_tagger.plugin:create_plugin",
        config={"tags": ["bench"], "headers": {"x-team": "bench"}},
        global_order=0,
    )
    pii = plugin("pii-redactor", "pii", "plugins.pii_redactor.plugin:create_plugin")
    plugin("request-logger", "logger", "plugins.request_logger.plugin:create_plugin")
    rewrite = plugin(
        "text-rewrite", "rewrite", "plugins.text_rewrite.plugin:create_plugin", config={"replace": {"tok": "token"}}
    )
    llm = llm_create(
        data={
            "name": "bench",
            "slug": f"bench-{namespace}",
            "vendor": "openai",
            "api_endpoint": upstream_v1,
            "api_key": "sk-upstream",
            "default_model": model,
            "allowed_models": [model],
            "namespace": namespace,
            "is_active": True,
        }
    )
    llm_set_plugin_chain(llm=llm, chain=[{"plugin": pii, "order_index": 0}, {"plugin": rewrite, "order_index": 1}])
    if not ModelPrice.objects.filter(vendor="openai", model=model).exists():
        model_price_upsert(
            data={
                "vendor": "openai",
                "model": model,
                "prompt_per_million": Decimal("0.15"),
                "completion_per_million": Decimal("0.6"),
            }
        )
    app = app_create(
        data={
            "name": "bench",
            "namespace": namespace,
            "approved": True,
            "is_active": True,
            "llm_ids": [llm.pk],
            "rate_limit_rpm": RPM,
            "rate_limit_tpm": TPM,
        }
    )
    credential_import(app=app, key=key, name="bench")
    budget = budget_create(data={"scope": "app", "app": app, "limit": BUDGET, "action": "block", "period": "monthly"})
    check_snapshot(namespace)
    return {"llm_id": llm.pk, "app_id": app.pk, "budget_id": budget.pk}


def check_snapshot(namespace: str) -> None:
    """The snapshot the control plane builds for `namespace` has the snapshot edge's plugins in the same roles, and
    the governance; SystemExit otherwise (a service that changed what it makes would skew the comparison)."""
    from control_plane.sync.selectors import snapshot_build

    snap = snapshot_build(namespace=namespace)
    plugins = {p.slug: p for p in snap.plugins}
    problems = []
    if set(plugins) != {"request-tagger", "pii-redactor", "request-logger", "text-rewrite"}:
        problems.append(f"plugins {sorted(plugins)}")
    elif plugins["request-tagger"].global_order != 0 or "data_collection" not in plugins["request-logger"].capabilities:
        problems.append("the tagger is not global or the logger not a data collector")
    if [b.plugin_slug for llm in snap.llms for b in llm.plugin_chain] != ["pii-redactor", "text-rewrite"]:
        problems.append(f"LLM chains {[llm.plugin_chain for llm in snap.llms]}")
    if [(a.rate_limit_rpm, a.rate_limit_tpm) for a in snap.apps] != [(RPM, TPM)]:
        problems.append("the app's rpm/tpm limits")
    if [(b.scope, b.action, b.limit) for b in snap.budgets] != [("app", "block", BUDGET)]:
        problems.append(f"budgets {snap.budgets}")
    if problems:
        raise SystemExit(f"the deployed edge's snapshot differs from the snapshot edge's: {'; '.join(problems)}")


def verify_like_snapshot(*, url: str, key: str, db_url: str, namespace: str, edge_id: str) -> dict[str, object]:
    """After a few requests through the deployed edge: each seeded part ran there, or SystemExit naming the one that
    did not. So the deployed targets are never measured without what makes them "deployed".

    - the request tagger (global): its tags are in the analytics rows' context in PostgreSQL;
    - the request logger (data collector): `GET /plugins/request-logger/recent` lists the edge's requests;
    - the budget lease: some worker's /ready shows a leased budget;
    - the rpm and tpm leases: the ledger holds this edge's rows for both keys.
    The PII redactor on the LLM's chain changes nothing in these requests; `seed_like_snapshot` bound it, and the
    snapshot check in `check_snapshot` confirms the edge received that chain."""
    import httpx
    import psycopg

    found: dict[str, object] = {}
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT context FROM analytics_analyticsevent WHERE edge_id = %s ORDER BY id DESC LIMIT 1", (edge_id,)
        ).fetchone()
        tags = ((row[0] or {}).get("metadata") or {}).get("request_tagger.tags") if row else None
        if not tags or "bench" not in tags:
            raise SystemExit(f"{edge_id}: the request tagger's tags are not in the analytics context: {row}")
        found["tagger_tags"] = tags
        keys = sorted(
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT key FROM budgets_ratelease WHERE namespace = %s AND edge_id LIKE %s",
                (namespace, f"{edge_id}%"),
            )
        )
        if not any(k.endswith(":rpm") for k in keys) or not any(k.endswith(":tpm") for k in keys):
            raise SystemExit(f"{edge_id}: no rpm and tpm leases in the ledger (keys {keys})")
        found["rate_lease_keys"] = keys
    auth = {"authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 10  # the collector runs after the answer and the edge's KV buffers its writes
    while True:
        recent = httpx.get(f"{url}/plugins/request-logger/recent?limit=1", headers=auth, timeout=10)
        if recent.status_code == 200 and recent.json().get("data"):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{edge_id}: the request logger has no entries: {recent.status_code} {recent.text[:200]}")
        time.sleep(0.2)
    for _ in range(20):  # fresh connections: any worker answers
        governance = httpx.get(f"{url}/ready", timeout=10).json().get("governance", {})
        if governance.get("budgets_leased", 0) >= 1:
            found["governance"] = governance
            return found
    raise SystemExit(f"{edge_id}: no worker holds a budget lease: {governance}")
