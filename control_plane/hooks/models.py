"""Which plugin wants which object hook, in what order (discovered from the plugin, refreshed on every save)."""

from __future__ import annotations

from django.db import models


class ObjectHookRegistration(models.Model):
    class ObjectType(models.TextChoices):
        LLM = "llm"
        APP = "app"
        TOOL = "tool"
        DATASOURCE = "datasource"
        USER = "user"

    class HookType(models.TextChoices):
        BEFORE_CREATE = "before_create"
        AFTER_CREATE = "after_create"
        BEFORE_UPDATE = "before_update"
        AFTER_UPDATE = "after_update"
        BEFORE_DELETE = "before_delete"
        AFTER_DELETE = "after_delete"

    plugin = models.ForeignKey("plugins.Plugin", on_delete=models.CASCADE, related_name="object_hooks")
    object_type = models.CharField(max_length=20, choices=ObjectType.choices)
    hook_type = models.CharField(max_length=20, choices=HookType.choices)
    priority = models.IntegerField(default=100, help_text="Lower runs first")

    class Meta:
        ordering = ["object_type", "hook_type", "priority", "plugin__slug"]
        constraints = [
            models.UniqueConstraint(fields=["plugin", "object_type", "hook_type"], name="hook_registration_once")
        ]

    def __str__(self) -> str:
        return f"{self.plugin_id} {self.hook_type} {self.object_type} ({self.priority})"
