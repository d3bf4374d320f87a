"""The schedules part of the OpenAPI schema: unique operationIds, and the per-schedule history as a paged list."""

from __future__ import annotations

import re

from drf_spectacular.generators import SchemaGenerator


def _schedule_operations() -> dict[tuple[str, str], dict]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (path, method): operation
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/schedules/")
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_schedule_operation_ids_are_unique_and_unsuffixed():
    operations = _schedule_operations()
    ids = [op["operationId"] for op in operations.values()]
    assert len(ids) == len(set(ids))
    # drf-spectacular resolves a collision by appending a number, which makes client method names unstable.
    assert [i for i in ids if re.search(r"_\d+$", i)] == []
    assert operations[("/api/v1/schedules/runs/{id}/", "get")]["operationId"] == "schedules_runs_retrieve"


def test_a_schedules_history_is_documented_as_a_paginated_list_of_runs():
    history = _schedule_operations()[("/api/v1/schedules/{id}/runs/", "get")]
    assert history["operationId"] == "schedules_history_list"
    assert {p["name"] for p in history["parameters"]} == {"id", "limit", "offset"}
    body = history["responses"]["200"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PaginatedScheduleRunList"}
