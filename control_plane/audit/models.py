"""One row per write to a governed object: who, what, when, from where, and a field-level diff."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """Written in the same transaction as the write it describes (see `recorder`), so neither exists alone.

    `actor_label` keeps who it was even after the user or token is deleted (`actor_user` is then NULL).
    `changes` maps a field to `[old, new]` (creates: `[null, new]`; deletes: `[old, null]`; many-to-many:
    `{"added": [...], "removed": [...]}`); secret fields appear as changed with both values redacted.
    """

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"

    class ActorKind(models.TextChoices):
        USER = "user"
        TOKEN = "token"
        PLUGIN = "plugin"
        SYSTEM = "system"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True, default="")
    source = models.CharField(max_length=20, help_text="admin, api, portal, shell, plugin, job")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    object_type = models.CharField(max_length=100, db_index=True, help_text="app_label.model")
    object_id = models.CharField(max_length=64, db_index=True)
    object_repr = models.CharField(max_length=200, blank=True, default="")
    namespace = models.CharField(max_length=100, blank=True, default="", db_index=True)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.actor_label or self.actor_kind} {self.action} {self.object_type}#{self.object_id}"
