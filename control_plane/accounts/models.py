"""Users are Django's; this app adds what Fjordgate needs on top: profile metadata and team catalogues."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

from control_plane.config.json_fields import JSONObjectField
from control_plane.sync.namespaces import namespace_check, validate_namespace


class Profile(models.Model):
    """Per-user settings that Django's `User` has no field for."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="fjordgate_profile")
    show_portal = models.BooleanField(default=True)
    show_chat = models.BooleanField(default=True)
    metadata = JSONObjectField(blank=True)
    app_namespace = models.CharField(
        max_length=63,
        blank=True,
        default="",
        validators=[validate_namespace],
        help_text="Where this user's self-service apps are created",
    )

    def __str__(self) -> str:
        return f"profile of {self.user_id}"


class Catalogue(models.Model):
    """What the members of a group (team) may see and request: LLMs, tools, datasources; and the agents they may
    chat with (agent plugins are granted like LLMs: a member sees the union of their groups' catalogues)."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="catalogue")
    llms = models.ManyToManyField("llms.LLM", blank=True, related_name="catalogues")
    tools = models.ManyToManyField("catalog.Tool", blank=True, related_name="catalogues")
    datasources = models.ManyToManyField("catalog.Datasource", blank=True, related_name="catalogues")
    agents = models.ManyToManyField(
        "plugins.Plugin",
        blank=True,
        related_name="catalogues",
        limit_choices_to={"capabilities__contains": ["agent"]},
        help_text="Agent plugins the group's members may talk to in the portal's chat",
    )

    def __str__(self) -> str:
        return f"catalogue of {self.group}"


class NamespaceRole(models.Model):
    """What a user may do in one namespace ("" = the global objects). Super-administrators (`is_superuser`)
    need none: they see and change everything.

    A role row lives in its namespace like any namespaced object (`access.NAMESPACE_PATHS`), so granting one is
    changing an object of that namespace: only its administrators (and super-administrators) may. `source` says
    who owns the row: a hand grant stays until revoked by hand, a single sign-on row is recomputed at each sign-in
    (`roles.py`)."""

    class Role(models.TextChoices):
        ADMIN = "admin", "administrator"
        OPERATOR = "operator", "operator (edges, plugins, schedules; domain read-only)"
        VIEWER = "viewer", "viewer (read-only)"

    class Source(models.TextChoices):
        MANUAL = "manual", "granted by hand"
        SSO = "sso", "single sign-on (recomputed at each sign-in)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="namespace_roles")
    namespace = models.CharField(max_length=63, blank=True, default="", validators=[validate_namespace])
    role = models.CharField(max_length=10, choices=Role.choices)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL, editable=False)

    class Meta:
        ordering = ["user_id", "namespace"]
        constraints = [
            models.UniqueConstraint(fields=["user", "namespace"], name="one_role_per_user_namespace"),
            namespace_check("accounts_namespacerole"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.role} of {self.namespace or '(global)'}"


class ApiToken(models.Model):
    """A personal API token. Only `sha256(key)` and a short prefix are stored; the key is shown once.

    It acts as its owner with the owner's namespace roles, narrowed further to `namespaces` (empty = all of the
    owner's) and to reads when `read_only`; expired or revoked tokens authenticate nobody.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=200, blank=True, default="")
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    namespaces = models.JSONField(default=list, blank=True, help_text='Narrow to these namespaces ("" = global)')
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.owner_id})"
