"""The config outbox: every change an edge needs leaves a row here in the same transaction as the change."""

from __future__ import annotations

from django.db import models

from .namespaces import validate_namespace


class ConfigVersionCounter(models.Model):
    """One row. Incremented with a row lock, so versions follow commit order and no change is skipped."""

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return str(self.value)


class ConfigChange(models.Model):
    """`namespace=""` is a global change: every namespace's config changed. The bridge sets `published_at`.

    A change the bridge fails to publish is retried with backoff (`attempts`, `next_attempt_at`, `last_error`);
    after `BRIDGE_OUTBOX_MAX_ATTEMPTS` failures it is set aside (`dead_lettered_at`) so it stops holding up the
    other namespaces. The admin's outbox page shows it with its error; its "retry" action clears the mark.

    The namespace has the validator but, unlike the objects, no CHECK constraint: PostgreSQL checks a `NOT VALID`
    constraint on every UPDATE too, so a row left from before the rule could not even be marked as failed. The
    outbox is written only from already validated objects; whatever else lands here the bridge sets aside.
    """

    namespace = models.CharField(max_length=100, blank=True, default="", db_index=True, validators=[validate_namespace])
    version = models.BigIntegerField(unique=True)
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0, help_text="failed publication attempts so far")
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    dead_lettered_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="set aside after repeated failures; retry from the admin"
    )

    class Meta:
        ordering = ["version"]

    def __str__(self) -> str:
        return f"v{self.version} {self.namespace or '(global)'}: {self.reason}"
