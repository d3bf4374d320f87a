"""Writes made by Celery tasks (schedules, system jobs) are attributed to the task, as a system job."""

from __future__ import annotations

from typing import Any

from .actor import acting_as

_active: dict[str, Any] = {}


def _started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    scope = acting_as("system", str(getattr(task, "name", "task")), "job")
    scope.__enter__()
    _active[task_id] = scope


def _finished(task_id: str | None = None, **_: Any) -> None:
    scope = _active.pop(task_id or "", None)
    if scope is not None:
        scope.__exit__(None, None, None)


def connect() -> None:
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_started, weak=False, dispatch_uid="audit-task-prerun")
    task_postrun.connect(_finished, weak=False, dispatch_uid="audit-task-postrun")
