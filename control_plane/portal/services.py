"""Writes from the portal: an app request goes through the same service as the API's self-service path."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from control_plane.applications.models import App
from control_plane.applications.notifications import notify_app_requested
from control_plane.applications.services import app_create, app_owner_namespace


def app_request(
    *,
    user: Any,
    name: str,
    description: str,
    llm_ids: list[int],
    tool_ids: list[int],
    datasource_ids: list[int],
    plugin_resources: list[dict[str, Any]] | None = None,
) -> App:
    """An unapproved app owned by `user`, in the owner's namespace (object hooks and the privacy rule run in
    `app_create`); staff are mailed once it is committed. Raises ValidationError with the privacy rule's
    sentences."""
    with transaction.atomic():
        app = app_create(
            data={
                "name": name,
                "description": description,
                "owner_id": user.pk,
                "namespace": app_owner_namespace(user),  # as the API's self-service path: its admins approve it
                "approved": False,
                "llm_ids": llm_ids,
                "tool_ids": tool_ids,
                "datasource_ids": datasource_ids,
                "plugin_resources": plugin_resources or [],
            },
            actor_id=user.pk,
        )
        notify_app_requested(app)
    return app
