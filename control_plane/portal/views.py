"""The portal's pages: catalogue, app requests, keys (shown once), usage with charts, CSV and budget progress.

Every page goes through `portal_view` (signed in, portal shown to the user); every change is a POST with Django's
CSRF check. Pages that show a clear key are never cached and the key is in that response only.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from typing import cast

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from control_plane.analytics.selectors import app_usage_daily
from control_plane.applications.services import (
    KEYS_AWAIT_APPROVAL,
    app_takes_owner_keys,
    credential_create,
    credential_revoke,
    credential_rotate,
)
from control_plane.config.exceptions import ApplicationError

from .access import portal_view
from .forms import AppRequestForm, KeyForm, RangeForm
from .selectors import (
    app_budgets,
    app_keys,
    catalogue_datasources,
    catalogue_llms,
    catalogue_tools,
    default_range,
    user_app,
    user_apps,
    user_credential,
)
from .services import app_request


class PortalLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    next_page = cast(str, reverse_lazy("portal:home"))


class PortalLogoutView(auth_views.LogoutView):
    next_page = cast(str, reverse_lazy("portal:login"))


@portal_view
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "apps": user_apps(user),
        "llms": catalogue_llms(user),
        "tools": catalogue_tools(user),
        "datasources": catalogue_datasources(user),
    }
    return TemplateResponse(request, "portal/home.html", context)


@portal_view
def request_app(request: HttpRequest) -> HttpResponse:
    form = AppRequestForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        cd = form.cleaned_data
        try:
            app = app_request(
                user=request.user,
                name=cd["name"],
                description=cd["description"],
                llm_ids=[o.pk for o in cd["llms"]],
                tool_ids=[o.pk for o in cd["tools"]],
                datasource_ids=[o.pk for o in cd["datasources"]],
                plugin_resources=form.plugin_resources(),
            )
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
        except ApplicationError as exc:  # an object hook refused the request
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"App {app.name!r} requested: an administrator will approve it.")
            return redirect("portal:app", app_id=app.pk)
    return TemplateResponse(request, "portal/request_app.html", {"form": form})


@portal_view
def app_detail(request: HttpRequest, app_id: int) -> HttpResponse:
    app = user_app(request.user, app_id)
    context = {"app": app, "keys": app_keys(app), "budgets": app_budgets(app), "key_form": KeyForm()}
    return TemplateResponse(request, "portal/app.html", context)


def _key_shown(request: HttpRequest, app, credential, key: str, verb: str) -> HttpResponse:
    """The only response that ever holds the clear key (callers are `never_cache`)."""
    return TemplateResponse(
        request, "portal/key_shown.html", {"app": app, "credential": credential, "key": key, "verb": verb}
    )


@never_cache
@require_POST
@portal_view
def key_create(request: HttpRequest, app_id: int) -> HttpResponse:
    app = user_app(request.user, app_id)
    form = KeyForm(request.POST)
    if not app_takes_owner_keys(app):
        messages.error(request, KEYS_AWAIT_APPROVAL)
        return redirect("portal:app", app_id=app.pk)
    if not form.is_valid():
        context = {"app": app, "keys": app_keys(app), "budgets": app_budgets(app), "key_form": form}
        return TemplateResponse(request, "portal/app.html", context, status=400)
    credential, key = credential_create(app=app, name=form.cleaned_data["name"], user_id=request.user.pk)
    return _key_shown(request, app, credential, key, "New")


@never_cache
@require_POST
@portal_view
def key_rotate(request: HttpRequest, app_id: int, key_id: int) -> HttpResponse:
    app = user_app(request.user, app_id)
    old = user_credential(request.user, app, key_id)
    if not app_takes_owner_keys(app):  # a rotated key would start working once the app is (re)activated
        messages.error(request, KEYS_AWAIT_APPROVAL)
        return redirect("portal:app", app_id=app.pk)
    try:
        credential, key = credential_rotate(credential=old)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("portal:app", app_id=app.pk)
    return _key_shown(request, app, credential, key, "Rotated")


@require_POST
@portal_view
def key_revoke(request: HttpRequest, app_id: int, key_id: int) -> HttpResponse:
    app = user_app(request.user, app_id)
    credential = credential_revoke(credential=user_credential(request.user, app, key_id))
    messages.success(request, f"Key {credential.prefix}… revoked: edges refuse it from their next config.")
    return redirect("portal:app", app_id=app.pk)


def _range(request: HttpRequest) -> tuple[RangeForm, dt.date, dt.date]:
    start, end = default_range()
    form = RangeForm(request.GET or None, initial={"start": start, "end": end})
    if form.is_bound and form.is_valid():
        return form, form.cleaned_data["start"], form.cleaned_data["end"]
    return form, start, end


@portal_view
def usage(request: HttpRequest, app_id: int) -> HttpResponse:
    app = user_app(request.user, app_id)
    form, start, end = _range(request)
    rows = app_usage_daily(app_id=app.pk, start=start, end=end)
    chart = {
        "labels": [row["day"].isoformat() for row in rows],
        "requests": [row["requests"] for row in rows],
        "tokens": [row["tokens"] for row in rows],
        "cost": [float(row["cost"]) for row in rows],
    }
    totals = {
        "requests": sum(r["requests"] for r in rows),
        "tokens": sum(r["tokens"] for r in rows),
        "cost": sum((r["cost"] for r in rows), Decimal("0")),
    }
    context = {
        "app": app,
        "form": form,
        "start": start,
        "end": end,
        "rows": rows,
        "chart": chart,
        "totals": totals,
        "budgets": app_budgets(app),
    }
    status = 400 if form.is_bound and not form.is_valid() else 200
    return TemplateResponse(request, "portal/usage.html", context, status=status)


@portal_view
def usage_csv(request: HttpRequest, app_id: int) -> HttpResponse:
    app = user_app(request.user, app_id)
    form, start, end = _range(request)
    if form.is_bound and not form.is_valid():
        return HttpResponse(" ".join(str(e) for e in form.non_field_errors()) or "Bad date range.", status=400)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="app-{app.pk}-usage-{start}-{end}.csv"'
    writer = csv.writer(response)
    writer.writerow(["day", "requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost"])
    for row in app_usage_daily(app_id=app.pk, start=start, end=end):
        writer.writerow(
            [
                row["day"].isoformat(),
                row["requests"],
                row["prompt_tokens"],
                row["completion_tokens"],
                row["tokens"],
                f"{row['cost']:.6f}",
            ]
        )
    return response
