"""Chat sessions of the portal: a user's conversation with one LLM or one agent plugin, kept so it can be reopened.

A session talks to exactly one target, chosen when it starts. Deleting the LLM or the agent keeps the history
(the foreign key is nulled) but the session can no longer continue.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


def agent_label(plugin: Any) -> str:
    """An agent's name as people read it: its manifest's name, else the plugin's own."""
    return str((plugin.manifest or {}).get("name") or plugin.name or plugin.slug)


class ChatSession(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    title = models.CharField(max_length=200, blank=True, default="")
    llm = models.ForeignKey("llms.LLM", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    agent = models.ForeignKey("plugins.Plugin", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["user", "-updated_at"], name="chat_session_user_recent")]
        constraints = [
            models.CheckConstraint(
                condition=~(models.Q(llm__isnull=False) & models.Q(agent__isnull=False)),
                name="chat_session_one_target",
            )
        ]

    def __str__(self) -> str:
        return self.title or f"chat {self.pk}"

    @property
    def target_label(self) -> str:
        if self.llm is not None:
            return f"LLM {self.llm.name}"
        if self.agent is not None:
            return f"agent {agent_label(self.agent)}"
        return "(no longer available)"


class ChatMessage(models.Model):
    """One turn. A user turn is `pending` until a reply stream claims it (`streaming`), then `answered`; the
    assistant turn holds the reply text and, in `parts`, every chunk kind the agent sent (tool calls, tool
    results, thinking, errors) in order, so a reopened session shows what happened, not just the final text."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        PENDING = "pending"
        STREAMING = "streaming"
        ANSWERED = "answered"
        DONE = "done"
        ERROR = "error"
        CANCELLED = "cancelled"

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True, default="")
    parts = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DONE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk}"
