"""`manage.py seed_demo`: the demo the launcher sets up on `fjordgate up` (idempotent: run it as often as you like).

Besides the LLM, prices, app and key the edge needs, it registers the bundled `usage_report` plugin (its manifest
brings the daily schedule) and adds a demo copy of that schedule firing every minute, so the admin shows a
completed run (and the report) within about a minute of `up`, not at five past midnight. A group, "Demo users",
offers the demo LLM in its catalogue and takes the `--member` users (`up` passes its admin): without it the portal's
catalogue and the chat of a fresh stack offered nothing ("ask an administrator").
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from control_plane.accounts.models import Catalogue
from control_plane.accounts.services import catalogue_set, group_save, user_update
from control_plane.applications.models import App
from control_plane.applications.services import app_create, app_update, credential_import
from control_plane.catalog.models import ModelPrice
from control_plane.catalog.services import model_price_upsert
from control_plane.config.exceptions import ApplicationError
from control_plane.llms.models import LLM
from control_plane.llms.services import llm_create, llm_update
from control_plane.plugins.models import Plugin
from control_plane.plugins.services import plugin_register
from control_plane.schedules.models import PluginSchedule
from control_plane.schedules.services import schedule_create

DEMO_LLM = "demo-mock"
DEMO_MODEL = "mock-gpt"
DEMO_APP = "demo"
USAGE_REPORT_SLUG = "usage-report"
USAGE_REPORT_ENTRY_POINT = "usage-report"
DEMO_SCHEDULE_ID = "demo-every-minute"
DEMO_SCHEDULE_NAME = "demo: usage report every minute"
DEMO_GROUP = "Demo users"


class Command(BaseCommand):
    help = "Create (or bring up to date) a mock LLM, its prices, an approved demo app and a client key."

    def add_arguments(self, parser):
        parser.add_argument("--namespace", default="demo")
        parser.add_argument("--upstream-url", required=True, help="Base URL of the mock LLM (OpenAI shape)")
        parser.add_argument("--api-key", required=True, help="The client key the demo app accepts (kept as a hash)")
        parser.add_argument(
            "--member",
            action="append",
            default=[],
            help="A user (username) to put in the demo group, whose catalogue offers the demo LLM (portal, chat)",
        )
        parser.add_argument("--json", action="store_true", help="Print what was made as one JSON object")

    def handle(
        self, *args, namespace: str, upstream_url: str, api_key: str, member: list[str], json: bool = False, **options
    ):
        try:
            with transaction.atomic():
                made = self._seed(namespace, upstream_url.rstrip("/"), api_key)
                made["group"] = _seed_demo_group(made["llm_id"], member).name
        except (ValidationError, ApplicationError) as exc:
            message = exc.message if isinstance(exc, ApplicationError) else "; ".join(exc.messages)
            raise CommandError(f"seed_demo failed: {message}") from None
        if json:
            self.stdout.write(_json(made))
        else:
            for key, value in made.items():
                self.stdout.write(f"{key}: {value}")

    def _seed(self, namespace: str, upstream_url: str, api_key: str) -> dict:
        llm_data = {
            "name": "Demo mock LLM",
            "slug": DEMO_LLM,
            "vendor": "mock",
            "api_endpoint": upstream_url,
            "default_model": DEMO_MODEL,
            "namespace": namespace,
            "is_active": True,
        }
        llm = LLM.objects.filter(slug=DEMO_LLM).first()
        llm = llm_update(llm=llm, data=llm_data) if llm else llm_create(data=llm_data)
        price = ModelPrice.objects.filter(vendor="mock", model=DEMO_MODEL).first()
        model_price_upsert(
            price=price,
            data={
                "vendor": "mock",
                "model": DEMO_MODEL,
                "prompt_per_million": Decimal("1.000000"),
                "completion_per_million": Decimal("2.000000"),
                "currency": "USD",
                "max_input_tokens": 128_000,
            },
        )
        app_data = {
            "name": DEMO_APP,
            "description": "Created by seed_demo",
            "namespace": namespace,
            "approved": True,
            "is_active": True,
            "llm_ids": [llm.pk],
        }
        app = App.objects.filter(name=DEMO_APP, namespace=namespace).first()
        app = app_update(app=app, data=app_data) if app else app_create(data=app_data)
        credential = credential_import(app=app, key=api_key, name="demo")
        plugin, schedule = _seed_usage_report(namespace)
        return {
            "namespace": namespace,
            "llm_id": llm.pk,
            "llm_slug": llm.slug,
            "model": DEMO_MODEL,
            "upstream_url": upstream_url,
            "app_id": app.pk,
            "credential_id": credential.pk,
            "credential_prefix": credential.prefix,
            "usage_report_plugin": plugin.slug,
            "demo_schedule_id": schedule.pk,
            "demo_schedule_cron": schedule.cron,
        }


def _seed_demo_group(llm_id: int, members: list[str]) -> Group:
    """The group whose catalogue offers the demo LLM, with `members` in it.

    Added to, never trimmed: LLMs an operator put in its catalogue and users already in it stay.
    """
    group = Group.objects.filter(name=DEMO_GROUP).first() or group_save(name=DEMO_GROUP)
    catalogue, _ = Catalogue.objects.get_or_create(group=group)
    offered = set(catalogue.llms.values_list("pk", flat=True))
    if llm_id not in offered:
        catalogue_set(group=group, llm_ids=sorted(offered | {llm_id}))
    users = {user.get_username(): user for user in get_user_model().objects.filter(username__in=members)}
    missing = sorted(set(members) - set(users))
    if missing:
        raise ValidationError(f"No such user: {', '.join(missing)}.")
    for user in users.values():
        if not user.groups.filter(pk=group.pk).exists():
            user_update(user=user, data={"groups": [*user.groups.values_list("name", flat=True), DEMO_GROUP]})
    return group


def _seed_usage_report(namespace: str) -> tuple[Plugin, PluginSchedule]:
    """Register the bundled usage_report plugin and its every-minute demo schedule, once.

    Both are left alone when they exist: an operator who changed the plugin's config or disabled the demo
    schedule keeps that change across `fjordgate up`s.
    """
    plugin = Plugin.objects.filter(slug=USAGE_REPORT_SLUG).first()
    if plugin is None:
        plugin = plugin_register(
            data={
                "slug": USAGE_REPORT_SLUG,
                "name": "Usage report",
                "entry_point": USAGE_REPORT_ENTRY_POINT,
                "namespace": namespace,
                "config": {"keep_days": 30},
            }
        )
    schedule = PluginSchedule.objects.filter(plugin=plugin, schedule_id=DEMO_SCHEDULE_ID).first()
    if schedule is None:
        shipped = PluginSchedule.objects.filter(plugin=plugin, from_manifest=True).order_by("pk").first()
        schedule = schedule_create(
            plugin=plugin,
            schedule_id=DEMO_SCHEDULE_ID,
            name=DEMO_SCHEDULE_NAME,
            cron="* * * * *",
            timezone="UTC",
            timeout_seconds=shipped.timeout_seconds if shipped else 300,
            config=dict(shipped.config) if shipped else {},
            overlap_policy=PluginSchedule.OverlapPolicy.SKIP,
        )
    return plugin, schedule


def _json(value: dict) -> str:
    return json.dumps(value, sort_keys=True)
