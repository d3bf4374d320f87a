"""Running ORM work from the bridge's event loop.

All database calls go through one worker thread: the ORM is synchronous, and one thread means one connection
whose health Django checks before each unit of work (PostgreSQL restarts are survived by reconnecting). Lease
grants, which edges wait for, have a thread (and connection) of their own, so a long telemetry insert does not
hold them up: `run_db_leases`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import close_old_connections

T = TypeVar("T")
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-db")
_lease_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-db-leases")


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(_call, fn, *args, **kwargs))


async def run_db_leases(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_lease_executor, functools.partial(_call, fn, *args, **kwargs))
