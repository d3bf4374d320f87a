"""Reading a multi-worker edge's `/metrics` in tests: which worker served how many LLM requests.

Why a module: the worker tests of the edge and of the whole system both ask it, and a second parser of the same
exposition would drift from the first."""

from __future__ import annotations

import re

_WORKER = re.compile(r'worker="(\d+)"')
_STATUS = re.compile(r'status="(\d+)"')


def requests_by_worker(exposition: str, status: int | None = None) -> dict[str, float]:
    """Worker index -> its `fjordgate_edge_requests_total` summed over every label set (or those of one `status`);
    every series must name its worker (an edge with several workers labels all of them).

    The series are counted from analytics records after the answer went out, so a test that reads them right
    after its last call waits for the count it expects, or filters by status to leave out a refusal it made last."""
    counts: dict[str, float] = {}
    for line in exposition.splitlines():
        if line.startswith("fjordgate_edge_requests_total{"):
            worker = _WORKER.search(line)
            assert worker, f"a series without its worker: {line}"
            if status is not None:
                found = _STATUS.search(line)
                assert found, f"a series without its status: {line}"
                if int(found.group(1)) != status:
                    continue
            index = worker.group(1)
            counts[index] = counts.get(index, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts
