"""Per-user rate limit of plugin page RPC (admin `UIProvider` and portal `PortalUIProvider` pages).

A plugin page's script can call its RPC in a loop, and each call runs plugin code in the control plane: so each
user gets `FJORDGATE_PLUGIN_RPC_PER_MINUTE` calls per plugin and minute (0 turns the limit off), counted in a
fixed one-minute window in Django's cache. That cache is Redis (`CACHES`, on `REDIS_URL`), shared by every web
process, so the limit holds however many processes serve the pages; process memory would give each its own.
When the cache cannot be reached, the call is let through and a warning logged: the limit guards against a
runaway page, it is not an access control, and a Redis outage should not take plugin pages down with it.
"""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse

__all__ = ["rpc_rate_limited"]

logger = logging.getLogger(__name__)

_WINDOW_S = 60


def _count(key: str) -> int:
    """This window's calls including this one (the key expires with a little slack after its window)."""
    if cache.add(key, 1, timeout=_WINDOW_S + 5):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr: this call starts the count again
        cache.set(key, 1, timeout=_WINDOW_S + 5)
        return 1


def rpc_rate_limited(*, area: str, slug: str, user_id: int) -> JsonResponse | None:
    """None when the user may make this RPC call now; else the 429 answer, with `Retry-After` in seconds."""
    limit = int(settings.FJORDGATE_PLUGIN_RPC_PER_MINUTE)
    if limit <= 0:
        return None
    now = time.time()
    window = int(now // _WINDOW_S)
    key = f"fjordgate:plugin-rpc:{area}:{slug}:{user_id}:{window}"
    try:
        calls = _count(key)
    except Exception as exc:  # the cache is down: let the call through (see the module docstring)
        logger.warning("plugin RPC rate limit not applied (cache unavailable: %s)", type(exc).__name__)
        return None
    if calls <= limit:
        return None
    retry_after = max(1, math.ceil((window + 1) * _WINDOW_S - now))
    response = JsonResponse(
        {"error": f"Too many calls to this plugin: at most {limit} per minute. Try again in {retry_after} s."},
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    return response
