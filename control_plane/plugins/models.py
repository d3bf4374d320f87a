"""Plugins the control plane knows: where their code is, their config, and what they can do."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from control_plane.config.json_fields import JSONListField, JSONObjectField
from control_plane.sync.namespaces import namespace_check, validate_namespace
from shared_sdk.scopes import ALL_SCOPES, SCOPES

SLUG = RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "Use lower-case letters, digits, '-' and '_'.")


def validate_scopes(value: object) -> None:
    """Operator grants name known scopes only: a typo must not silently grant (or fail to grant) anything."""
    if not isinstance(value, list) or not all(isinstance(scope, str) for scope in value):
        raise ValidationError("Give the extra scopes as a list of scope names.")
    unknown = sorted(set(value) - set(SCOPES) - {ALL_SCOPES})
    if unknown:
        raise ValidationError(f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(sorted(SCOPES))}.")


class Plugin(models.Model):
    """A plugin: imported in-process (`import_path`) or run isolated (`command`); exactly one is set.

    `capabilities`, `manifest`, `config_schema` and `hook_registrations` are discovered from the plugin itself when
    it is registered or updated (never typed in by hand), so they cannot drift from the code.
    """

    class FailurePolicy(models.TextChoices):
        OPEN = "open", "Fail open (skip the plugin)"
        CLOSED = "closed", "Fail closed (refuse the request/operation)"

    slug = models.SlugField(max_length=100, unique=True, validators=[SLUG])
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=50, blank=True, default="")
    description = models.TextField(blank=True, default="")
    import_path = models.CharField(
        max_length=300, blank=True, default="", help_text="module:attribute of a plugin class or factory (in-process)"
    )
    command = JSONListField(blank=True, help_text="argv of an isolated plugin process")
    config = JSONObjectField(blank=True)
    failure_policy = models.CharField(max_length=10, choices=FailurePolicy.choices, default=FailurePolicy.OPEN)
    timeout_ms = models.PositiveIntegerField(default=30_000, validators=[MinValueValidator(10)])
    namespace = models.CharField(max_length=100, blank=True, default="", db_index=True, validators=[validate_namespace])
    active = models.BooleanField(default=True)
    global_order = models.IntegerField(
        null=True, blank=True, help_text="Runs on every request of its namespace in this order; empty = only in chains"
    )
    extra_scopes = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_scopes],
        help_text='Service scopes granted beyond what the plugin\'s manifest declares ("*" grants all).',
    )
    capabilities = models.JSONField(default=list, blank=True, editable=False)
    manifest = models.JSONField(default=dict, blank=True, editable=False)
    config_schema = models.JSONField(default=dict, blank=True, editable=False)
    hook_registrations = models.JSONField(default=list, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            namespace_check("plugins_plugin"),
            models.CheckConstraint(
                condition=(models.Q(import_path="") & ~models.Q(command=[]))
                | (~models.Q(import_path="") & models.Q(command=[])),
                name="plugin_import_path_xor_command",
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class OutboundEvent(models.Model):
    """The event outbox: a studio plugin's `Direction.DOWN` event waiting for a bridge to put it on NATS.

    Only the bridge talks to NATS, but studio plugins run in every control-plane process (web, Celery worker,
    bridge). Each of them writes its DOWN events here, in the caller's transaction when the plugin was called
    from one (an event about a change that rolled back is never sent); the leader bridge drains the rows in `id`
    order, publishes them on `fj.down.<ns>.event` / `fj.down._all.event` and sets `sent_at`. Rows are claimed with
    `SELECT ... FOR UPDATE SKIP LOCKED`, so two bridges that both believe they lead never send a row twice.
    """

    event_id = models.CharField(max_length=64)
    topic = models.CharField(max_length=255)
    namespace = models.CharField(max_length=100, blank=True, default="", help_text='"" = every edge')
    source = models.CharField(max_length=100, blank=True, default="", help_text="the publishing plugin")
    body = models.BinaryField(help_text="the whole event, msgpack (shared_sdk.messages.Event)")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], condition=models.Q(sent_at__isnull=True), name="plugins_outbound_pending"),
            models.Index(fields=["sent_at"], condition=models.Q(sent_at__isnull=False), name="plugins_outbound_sent"),
        ]

    def __str__(self) -> str:
        return f"{self.topic} -> {self.namespace or '(every edge)'}"
