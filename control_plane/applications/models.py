"""Apps (what a client key grants access to) and their credentials."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from control_plane.config.json_fields import JSONListField, JSONObjectField
from control_plane.sync.namespaces import namespace_check, validate_namespace


class App(models.Model):
    """A consumer of LLMs. Inactive until an admin approves it; the privacy rule binds its resources to its LLMs."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="fjordgate_apps"
    )
    namespace = models.CharField(max_length=100, blank=True, default="", db_index=True, validators=[validate_namespace])
    is_active = models.BooleanField(default=True)
    approved = models.BooleanField(default=False)
    approved_at = models.DateTimeField(null=True, blank=True, editable=False)
    metadata = JSONObjectField(blank=True)
    llms = models.ManyToManyField("llms.LLM", blank=True, related_name="apps")
    tools = models.ManyToManyField("catalog.Tool", blank=True, related_name="apps")
    datasources = models.ManyToManyField("catalog.Datasource", blank=True, related_name="apps")
    tags = models.ManyToManyField("catalog.Tag", blank=True, related_name="apps")
    rate_limit_rpm = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    rate_limit_tpm = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    user_rate_limit_rpm = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    user_rate_limit_tpm = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    allowed_ips = JSONListField(blank=True, help_text="Addresses or CIDRs; empty allows any")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [namespace_check("applications_app")]
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class PluginResource(models.Model):
    """An instance of a plugin-provided resource type attached to an app (privacy-scored like a tool)."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="plugin_resources")
    plugin = models.ForeignKey("plugins.Plugin", on_delete=models.CASCADE, related_name="app_resources")
    resource_type = models.CharField(max_length=100)
    resource_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200, blank=True, default="")
    privacy_score = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])

    class Meta:
        ordering = ["app", "plugin", "resource_type", "resource_id"]
        constraints = [
            models.UniqueConstraint(fields=["app", "plugin", "resource_type", "resource_id"], name="resource_once")
        ]

    def __str__(self) -> str:
        return f"{self.plugin_id}:{self.resource_type}/{self.resource_id}"


class Credential(models.Model):
    """A client key of an app. Only `sha256(key)` and a short prefix are stored; the key is shown once."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="credentials")
    name = models.CharField(max_length=200, blank=True, default="")
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="fjordgate_keys"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    rotated_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rotated_to", editable=False
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.app_id})"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
