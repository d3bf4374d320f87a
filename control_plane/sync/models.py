"""The config outbox: every change an edge needs leaves a row here in the same transaction as the change."""

from __future__ import annotations

from django.db import models


class ConfigVersionCounter(models.Model):
    """One row. Incremented with a row lock, so versions follow commit order and no change is skipped."""

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return str(self.value)


class ConfigChange(models.Model):
    """`namespace=""` is a global change: every namespace's config changed. The bridge sets `published_at`."""

    namespace = models.CharField(max_length=100, blank=True, default="", db_index=True)
    version = models.BigIntegerField(unique=True)
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["version"]

    def __str__(self) -> str:
        return f"v{self.version} {self.namespace or '(global)'}: {self.reason}"
