"""Schemathesis against the OpenAPI schema, in-process over WSGI: no input may produce a server error.

Covers every operation under /api/v1/ (users, groups, apps, credentials, LLMs, tools, datasources, tags, prices,
budgets, plugins read-only, KV, config changes, edges and reloads, analytics, schedules and runs). Plugin writes are
left out on purpose: a plugin's import path is code the server imports, and fuzzing it would import arbitrary
modules.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

API_PATHS = r"^/api/v1/(?!schema/|docs/)"


@pytest.fixture
def api_schema(db):
    # As Django's test client does: a finished request must not close the test's (transactional) connection.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield _schema()
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


def _schema():
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
    return schema.include(path_regex=API_PATHS).exclude(
        path_regex=r"^/api/v1/plugins/", method=["POST", "PUT", "PATCH"]
    )


@pytest.fixture
def admin_token(admin_user):
    from control_plane.llms.services import llm_create

    llm_create(data={"name": "L", "slug": "l", "vendor": "mock", "api_endpoint": "http://m.local", "api_key": "k"})
    from control_plane.accounts.tokens import api_token_create

    return api_token_create(owner=admin_user)[1]


def test_no_server_error(api_schema, admin_token):
    """Every operation, a few generated cases each (derandomized, so a failure reproduces)."""
    headers = {"Authorization": f"Token {admin_token}"}
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    covered = {op.path.split("/")[3] for op in operations}
    assert {"apps", "llms", "budgets", "edges", "analytics", "schedules", "kv-entries", "plugins"} <= covered, covered

    for operation in operations:

        @settings(
            max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Exception as exc:  # collect every failing operation, not just the first
            failures.append(f"{operation.label}: {str(exc)[:500]}")
    assert failures == []
