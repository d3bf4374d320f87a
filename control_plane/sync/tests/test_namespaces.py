"""One namespace rule everywhere: the API answers 400 on the field, the admin shows a form error, the database
refuses what slips past both, and nothing reaches the outbox."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from control_plane.applications.services import app_create
from control_plane.budgets.models import Budget
from control_plane.llms.models import LLM
from control_plane.llms.services import llm_create
from control_plane.llms.tests.test_admin_chain import LLM_FORM
from control_plane.sync.models import ConfigChange
from control_plane.sync.namespaces import namespace_check_sql, namespace_is_valid

pytestmark = pytest.mark.django_db

BAD = "bad ns!"
LLM_DATA = {"name": "L", "slug": "l", "vendor": "mock", "api_endpoint": "http://mock.local/v1"}
WRITES = [
    ("/api/v1/llms/", LLM_DATA),
    ("/api/v1/apps/", {"name": "bot"}),
    ("/api/v1/tools/", {"name": "HR", "slug": "hr"}),
    ("/api/v1/datasources/", {"name": "Docs", "slug": "docs"}),
    (
        "/api/v1/plugins/",
        {"slug": "p", "import_path": "control_plane.hooks.tests.plugins:ConfiguredPlugin", "config": {"mode": "log"}},
    ),
]


@pytest.mark.parametrize(
    "name,valid",
    [
        ("", True),
        ("demo", True),
        ("ns-a", True),
        ("a" * 63, True),
        ("0eu", True),
        ("a" * 64, False),
        (BAD, False),
        ("Demo", False),
        ("ns_a", False),
        ("-ns", False),
        ("ns-", False),
        ("a.b", False),
        ("a*", False),
        ("a>", False),
        ("ns\n", False),
    ],
)
def test_rule_is_a_dns_label_that_fits_nats_subjects_and_buckets(name, valid):
    assert namespace_is_valid(name) is valid


@pytest.mark.parametrize("url,data", WRITES, ids=[url.split("/")[3] for url, _ in WRITES])
def test_api_refuses_a_bad_namespace_with_a_400_on_the_field(admin_api, url, data):
    before = ConfigChange.objects.count()
    response = admin_api.post(url, {**data, "namespace": BAD}, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()["extra"]["fields"]["namespace"]
    assert any("lowercase letters, digits and '-'" in e for e in errors), errors
    assert ConfigChange.objects.count() == before, "a refused write records no config change"
    # the same write with a good namespace is accepted, and so is an update back to a bad one refused
    good = admin_api.post(url, {**data, "namespace": "eu"}, format="json")
    assert good.status_code == 201, good.content
    patched = admin_api.patch(f"{url}{good.json()['id']}/", {"namespace": BAD}, format="json")
    assert patched.status_code == 400 and "namespace" in patched.json()["extra"]["fields"]


def test_budget_namespace_comes_from_its_target_and_a_bad_one_is_never_stored(admin_api):
    llm = llm_create(data={**LLM_DATA, "namespace": "eu"})
    app = app_create(data={"name": "bot", "namespace": "eu", "llm_ids": [llm.pk]})
    response = admin_api.post(
        "/api/v1/budgets/", {"scope": "app", "app": app.pk, "limit": "10", "namespace": BAD}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["namespace"] == "eu"
    budget = Budget.objects.get()
    budget.namespace = BAD
    with pytest.raises(IntegrityError, match="budgets_budget_namespace_valid"), transaction.atomic():
        budget.save()
    assert Budget.objects.get().limit == Decimal("10") and Budget.objects.get().namespace == "eu"


def test_database_refuses_a_bad_namespace_written_past_the_validators():
    with pytest.raises(IntegrityError, match="llms_llm_namespace_valid"), transaction.atomic():
        LLM.objects.create(**LLM_DATA, namespace=BAD)


def test_constraint_is_added_over_rows_from_before_the_rule_which_can_still_be_deleted():
    """The migration's SQL (NOT VALID) succeeds on a table that already holds a bad namespace."""
    add, drop = namespace_check_sql("llms_llm")
    with connection.cursor() as cursor:
        cursor.execute(drop)
        legacy = LLM.objects.create(**LLM_DATA, namespace=BAD)
        cursor.execute(add)
    with pytest.raises(IntegrityError), transaction.atomic():
        LLM.objects.filter(pk=legacy.pk).update(is_active=False)  # kept, but refused again once edited
    LLM.objects.filter(pk=legacy.pk).update(namespace="fixed")
    LLM.objects.filter(pk=legacy.pk).delete()
    assert not LLM.objects.exists()


def test_admin_form_shows_the_rule_on_the_namespace_field(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/admin/llms/llm/add/", {**LLM_FORM, "namespace": BAD, **_no_inline()})
    assert response.status_code == 200
    assert "lowercase letters, digits and" in response.content.decode()
    assert not LLM.objects.exists()


def _no_inline() -> dict:
    return {"plugin_bindings-TOTAL_FORMS": 0, "plugin_bindings-INITIAL_FORMS": 0}
