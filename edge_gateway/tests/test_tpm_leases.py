"""Tokens per minute across edges: two real edges lease one app's tpm limit from one ledger (an in-memory stand-in
for the control plane's, granting whole asks while the limit lasts), 16 clients burst over both; what they
admit in the minute is at most the limit plus one request's tokens. Before tpm was leased each edge counted only
its own tokens (and its peers' half a second late), so two edges admitted about twice the limit."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import httpx

from edge_gateway.budgets import BudgetState
from edge_gateway.ratelimit import RateLease

from .support import CLIENT_KEY, AppConfig, make_snapshot, run_edge

LIMIT = 300
CLIENTS = 16
PER_CLIENT = 5


class _Ledger:
    """Grants of one minute shared by the edges (thread-safe: each edge runs its own loop and thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.granted: dict[tuple[str, int, int], int] = {}
        self.asks: list[tuple[str, int, int]] = []

    def grant(self, edge: int, lease: RateLease, need: int, unit: int) -> None:
        with self.lock:
            self.asks.append((lease.key, need, unit))
            total = sum(
                v for (key, minute, _), v in self.granted.items() if (key, minute) == (lease.key, lease.window_start)
            )
            extra = min(need, lease.limit - total)
            if extra < min(need, unit):
                extra = 0  # only whole requests at the end, as the control plane's ledger
            mine = (lease.key, lease.window_start, edge)
            self.granted[mine] = self.granted.get(mine, 0) + max(0, extra)
            lease.granted = self.granted[mine]


class _Source:
    """The `LeaseSource` of one edge over the shared ledger (no budgets are configured: rate leases only)."""

    def __init__(self, ledger: _Ledger, edge: int) -> None:
        self.ledger, self.edge = ledger, edge

    async def obtain(self, short: list[tuple[BudgetState, Decimal]], unit: Decimal) -> bool:
        return False

    def top_up(self, state: BudgetState, unit: Decimal) -> None:
        return None

    async def obtain_rate(self, lease: RateLease, need: int, unit: int = 1) -> bool:
        self.ledger.grant(self.edge, lease, need, unit)
        return True

    def top_up_rate(self, lease: RateLease, unit: int = 1) -> None:
        self.ledger.grant(self.edge, lease, unit, unit)

    def unreachable_open(self, state: BudgetState) -> bool:
        return False


def _burst(urls: list[str]) -> tuple[dict[int, int], list[int]]:
    counts: dict[int, int] = {}
    tokens: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(timeout=20) as http:
            for turn in range(PER_CLIENT):
                reply = http.post(
                    f"{urls[index % len(urls)]}/v1/chat/completions",
                    headers={"authorization": f"Bearer {CLIENT_KEY}"},
                    json={
                        "model": "mock-gpt",
                        "max_tokens": 8,
                        "messages": [{"role": "user", "content": f"hello number {index} {turn}"}],
                    },
                )
                with lock:
                    counts[reply.status_code] = counts.get(reply.status_code, 0) + 1
                    if reply.status_code == 200:
                        tokens.append(reply.json()["usage"]["total_tokens"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts, tokens


def test_two_edges_admit_at_most_the_tpm_limit_plus_one_request_in_a_minute(upstream, tmp_path):
    apps = [AppConfig(id=1, name="app-one", llm_ids=[1], rate_limit_tpm=LIMIT)]
    snapshot = make_snapshot(upstream, apps=apps)
    ledger = _Ledger()
    with run_edge(snapshot, tmp_path, edge_id="t1") as one, run_edge(snapshot, tmp_path, edge_id="t2") as two:
        for index, edge in enumerate((one, two)):
            edge.edge.runtime.limiter.leasing = True
            edge.edge.runtime.budgets.source = _Source(ledger, index)
        while time.time() % 60 > 40:  # the whole burst inside one fixed minute
            time.sleep(0.5)
        counts, tokens = _burst([one.url, two.url])
        assert set(counts) <= {200, 429}, counts
        assert counts.get(429, 0) > 0, "the limit was reached"
        assert sum(tokens) <= LIMIT + max(tokens), f"{sum(tokens)} tokens admitted under {LIMIT} per minute"
        assert sum(tokens) >= LIMIT // 3, f"only {sum(tokens)} of {LIMIT} tokens used"
        assert any(unit > 1 for _, _, unit in ledger.asks), "the edges asked for token bounds"
        # settlement swapped each request's bound for what the vendor counted: the leases hold the tokens used
        leases = [
            one.edge.runtime.limiter.rate_lease("app:1:tpm", LIMIT),
            two.edge.runtime.limiter.rate_lease("app:1:tpm", LIMIT),
        ]
        assert sum(lease.used for lease in leases) == sum(tokens)


class _Unreachable(_Source):
    async def obtain_rate(self, lease: RateLease, need: int, unit: int = 1) -> bool:
        return False

    def top_up_rate(self, lease: RateLease, unit: int = 1) -> None:
        return None


def test_with_the_ledger_unreachable_tpm_fails_open_to_the_local_window(upstream, tmp_path):
    apps = [AppConfig(id=1, name="app-one", llm_ids=[1], rate_limit_tpm=LIMIT)]
    with run_edge(make_snapshot(upstream, apps=apps), tmp_path, edge_id="t3") as edge:
        edge.edge.runtime.limiter.leasing = True
        edge.edge.runtime.budgets.source = _Unreachable(_Ledger(), 0)
        with httpx.Client(timeout=20) as http:
            statuses = [
                http.post(
                    f"{edge.url}/v1/chat/completions",
                    headers={"authorization": f"Bearer {CLIENT_KEY}"},
                    json={"model": "mock-gpt", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
                ).status_code
                for _ in range(5)
            ]
    assert statuses == [200] * 5, "no lease, but the local window has room: served"
