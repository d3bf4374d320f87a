"""Schemathesis against the OpenAPI schema (`/api/v1/schema/`), in-process over WSGI: no input is a server error.

Every operation under /api/v1/ runs against one seeded object of each kind (path ids point at real rows, so
updates reach the services, not a 404), with two kinds of input:

- generated cases, valid and invalid (schemathesis' positive and negative modes, derandomized and bounded), checked
  for server errors and, for documented answers, for conformance to the response schema;
- a sweep of every request-body field of every write: `null`, then a value of the wrong JSON type, over an
  otherwise valid body. A field that is not nullable must answer 400 naming that field, never 500.

Each request runs in a savepoint, as it would run in its own transaction in production: a database error in one
request is reported as that request's failure and does not poison the next one.

Plugin writes are included: registration checks the code source against the operator's allow-list (entry points,
import roots, command folders) with string rules before anything is imported or spawned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import DatabaseError, close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from werkzeug.test import Client as WsgiClient

from .seed import seed_one_of_each

API_PATHS = r"^/api/v1/(?!schema/|docs/)"
EXAMPLES_PER_OPERATION = 5
UNIQUE_FIELDS = ("name", "slug", "username", "schedule_id", "model")
WRONG_TYPE = {"string": {"a": 1}, "integer": "abc", "number": "abc", "boolean": "maybe", "array": 7, "object": 7}


@pytest.fixture
def api_schema(db):
    # As Django's test client does: a finished request must not close the test's (transactional) connection.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
    yield schema.include(path_regex=API_PATHS)
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def headers(admin_user) -> dict[str, str]:
    from control_plane.accounts.tokens import api_token_create

    seed_one_of_each(admin_user)
    return {"Authorization": f"Token {api_token_create(owner=admin_user)[1]}"}


def _operations(schema) -> list:
    """Every operation, deletes last (so the seeded rows serve every other operation first)."""
    operations = [result.ok() for result in schema.get_all_operations()]
    return sorted(operations, key=lambda op: op.method.upper() == "DELETE")


def _call(case, headers: dict[str, str]):
    """One request in its own savepoint; a database error surfaces as an exception naming the request."""
    try:
        with transaction.atomic():
            return case.call(headers=headers)
    except DatabaseError as exc:
        raise AssertionError(f"database error left behind: {exc}") from None


def _real_path_parameters(operation, headers: dict[str, str]) -> dict[str, Any]:
    """Path parameters of a seeded row: the first item of the collection the path names."""
    values = {}
    for parameter in operation.path_parameters:
        name = parameter.name
        collection = operation.path.split("{" + name + "}")[0]
        listing = _get(collection, headers)
        items = (listing or {}).get("results", listing) if isinstance(listing, dict) else listing
        if items:
            values[name] = items[0].get(name, items[0].get("id"))
    return values


def _get(path: str, headers: dict[str, str]) -> Any:
    """A GET through the same WSGI app (Django's test client would re-connect the connection-closing signal)."""
    response = WsgiClient(get_wsgi_application()).get(path, headers=headers)
    return response.json if response.status_code == 200 else None


def _failures_of_generated_cases(operation, headers, path_parameters) -> list[str]:
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(
        case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
        | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    )
    def check(case):
        case.path_parameters = {**(case.path_parameters or {}), **path_parameters}
        response = _call(case, headers)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    try:
        check()
    except Exception as exc:  # every failing operation is reported, not just the first
        failures.append(f"{operation.label}: {str(exc)[:800]}")
    return failures


def _body_schema(operation) -> dict:
    body = operation.definition.raw.get("requestBody", {}).get("content", {}).get("application/json", {})
    return _resolve(body.get("schema", {}), operation.schema.raw_schema["components"]["schemas"])


def _field_sweep(operation, base: dict, values: Callable[[dict], list[Any]]) -> Iterator[tuple[str, Any, dict]]:
    """(field, bad value, body) for `null` and values of the wrong JSON type in every field of the request body,
    and in every field of the objects a list field holds (an LLM's plugin chain, an app's plugin resources)."""
    components = operation.schema.raw_schema["components"]["schemas"]
    for field, prop in (_body_schema(operation).get("properties") or {}).items():
        if prop.get("readOnly"):
            continue
        for value in values(prop):
            yield field, value, {**base, field: value}
        item = _resolve(prop.get("items") or {}, components)
        for name, item_prop in (item.get("properties") or {}).items():
            for value in values(_resolve(item_prop, components)):
                yield field, [{name: value}], {**base, field: [{name: value}]}


def _resolve(prop: dict, components: dict) -> dict:
    if "$ref" in prop:
        return components[prop["$ref"].rsplit("/", 1)[-1]]
    return prop


def _wrong_values(prop: dict) -> list[Any]:
    """`null`, then values of the wrong JSON type."""
    kind = prop.get("type")
    if kind == "array":
        return [None, 7, [None], [[1]], [{"a": 1}]]
    if kind in WRONG_TYPE:
        return [None, WRONG_TYPE[kind]]
    if _is_json_field(prop):
        return [None, "x", 7]  # a JSON field: an object or a list, never a bare string or number
    return [None, 7]


def _unstorable_values(prop: dict) -> list[Any]:
    """Text PostgreSQL cannot store (NUL, an unpaired surrogate) wherever a field can hold text."""
    kind = prop.get("type")
    if kind == "string":
        return ["a\x00b", "a\ud800b"]
    if kind == "array":
        return [["a\x00b"], [{"k": "\ud800"}]]
    if _is_json_field(prop):
        return [{"k": "a\x00b"}, {"a\x00": 1}, {"k": ["\ud800"]}]
    return []


def _is_json_field(prop: dict) -> bool:
    return not prop.get("type") and not prop.get("enum") and not prop.get("oneOf") and not prop.get("allOf")


def _base_body(operation, headers: dict[str, str], path_parameters: dict[str, Any], serial: int) -> dict:
    """A valid body to spoil one field at a time: the seeded row as the API shows it (PUT), the same with its unique
    fields changed (POST), nothing else (PATCH: the one field alone)."""
    method = operation.method.upper()
    if method == "PATCH":
        return {}
    properties = _body_schema(operation).get("properties") or {}
    if method == "PUT":
        shown = _get(operation.path.format(**path_parameters), headers) or {}
    else:
        collection = _get(operation.path, headers)
        items = collection.get("results", []) if isinstance(collection, dict) else (collection or [])
        shown = items[0] if items else {}
    body = {k: v for k, v in shown.items() if k in properties and not properties[k].get("readOnly")}
    if method == "POST":
        for name in UNIQUE_FIELDS:
            if isinstance(body.get(name), str):
                body[name] = f"{body[name]}-{serial}"
    return body


def _failures_of_field_sweep(
    operation, headers, path_parameters, values: Callable[[dict], list[Any]] = _wrong_values
) -> list[str]:
    failures: list[str] = []
    if operation.method.upper() not in ("POST", "PUT", "PATCH") or not _body_schema(operation):
        return failures
    properties = _body_schema(operation).get("properties") or {}
    for serial, (field, value, body) in enumerate(
        _field_sweep(operation, _base_body(operation, headers, path_parameters, 0), values), start=1
    ):
        for name in UNIQUE_FIELDS:  # a POST that succeeds must not make the next one a duplicate
            if operation.method.upper() == "POST" and isinstance(body.get(name), str) and name != field:
                body[name] = f"{body[name]}-{serial}"
        case = operation.Case(body=body, path_parameters=path_parameters, media_type="application/json")
        try:
            response = _call(case, headers)
        except AssertionError as exc:
            failures.append(f"{operation.label} {field}={value!r}: {exc}")
            continue
        status = response.status_code
        if status >= 500 or not _refused_or_not_stored(response, field, value, properties[field]):
            failures.append(f"{operation.label} {field}={value!r}: {status} {response.text[:300]}")
    return failures


def _refused_or_not_stored(response, field: str, value: Any, prop: dict) -> bool:
    """A bad value is refused (400 naming the field), or the write succeeded without storing it."""
    if response.status_code in (403, 404):
        return True
    if response.status_code == 400:
        return field in (response.json().get("extra", {}).get("fields") or {})
    if value is None and prop.get("nullable"):
        return True
    shown = response.json() if response.status_code < 300 and response.content else {}
    return not isinstance(shown, dict) or shown.get(field, object()) != value


def test_every_operation_answers_without_server_error(api_schema, headers):
    """Generated valid and invalid input for every operation: 0 server errors, documented answers conform."""
    failures: list[str] = []
    operations = _operations(api_schema)
    covered = {op.path.split("/")[3] for op in operations}
    assert {"apps", "llms", "budgets", "edges", "analytics", "schedules", "kv-entries", "plugins"} <= covered, covered
    for operation in operations:
        failures += _failures_of_generated_cases(operation, headers, _real_path_parameters(operation, headers))
    assert failures == [], "\n".join(failures)


def test_null_and_wrong_types_are_validation_errors(api_schema, headers):
    """Every field of every write, set to null or to the wrong JSON type: a 400 naming the field, never a 500."""
    failures: list[str] = []
    for operation in _operations(api_schema):
        failures += _failures_of_field_sweep(operation, headers, _real_path_parameters(operation, headers))
    assert failures == [], "\n".join(failures)


def test_text_postgresql_cannot_store_is_a_validation_error(api_schema, headers):
    """NUL and unpaired surrogates in every text-bearing field of every write (JSON columns, slugs looked up in
    another table, strings in lists): a 400 naming the field. JSON columns and lookups were 500s on a dozen
    endpoints (`control_plane.config.parsers`)."""
    failures: list[str] = []
    for operation in _operations(api_schema):
        failures += _failures_of_field_sweep(
            operation, headers, _real_path_parameters(operation, headers), _unstorable_values
        )
    assert failures == [], "\n".join(failures)
