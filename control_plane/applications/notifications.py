"""Mail about app requests: staff hear of a new request, the owner hears of the approval.

Sent after the transaction commits (a rolled-back request or approval mails nobody) and never fatal: a mail
server that is down must not undo an approval. Without `FJORDGATE_EMAIL_HOST` Django's dummy backend drops them.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction

from .models import App

log = logging.getLogger(__name__)


def _send(subject: str, body: str, recipients: list[str]) -> None:
    if not recipients:
        return
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception:  # noqa: BLE001 - mail is a courtesy; the admin and portal show the same state
        log.warning("could not send %r to %d recipients", subject, len(recipients), exc_info=True)


def notify_app_requested(app: App) -> None:
    """Tell active staff with an address that `app` waits for approval."""
    owner = app.owner.get_username() if app.owner else "someone"
    subject = f"[Fjordgate] App request: {app.name}"
    body = (
        f"{owner} requested the app {app.name!r} (id {app.pk}).\n\n{app.description}\n\n"
        f"Approve it in the admin: /admin/applications/app/{app.pk}/change/ "
        "(or the 'Approve selected apps' action in the app list)."
    )
    recipients = list(
        get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="").values_list("email", flat=True)
    )
    transaction.on_commit(lambda: _send(subject, body, recipients))


def notify_app_approved(app: App) -> None:
    """Tell the owner their app is approved and that keys can now be created in the portal."""
    if app.owner is None or not app.owner.email:
        return
    subject = f"[Fjordgate] Your app {app.name} is approved"
    body = f"Your app {app.name!r} is approved. Create its key in the portal: /portal/apps/{app.pk}/"
    recipients = [app.owner.email]
    transaction.on_commit(lambda: _send(subject, body, recipients))
