"""Chat forms: the target comes from the user's catalogue; a message is neither empty nor oversized; a title is
neither empty nor longer than the column."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from .models import ChatSession, agent_label
from .selectors import catalogue_agents, catalogue_llms


class NewSessionForm(forms.Form):
    """`target` is `llm:<id>` or `agent:<id>`, offered from the user's catalogue only; anything else is an invalid
    choice."""

    target = forms.ChoiceField(label="Talk to")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        llms = [(f"llm:{llm.pk}", f"{llm.name} (LLM)") for llm in catalogue_llms(user)]
        agents = [(f"agent:{agent.pk}", f"{agent_label(agent)} (agent)") for agent in catalogue_agents(user)]
        groups: list[Any] = []
        if llms:
            groups.append(("LLMs", llms))
        if agents:
            groups.append(("Agents", agents))
        field = self.fields["target"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = groups

    def chosen(self) -> tuple[str, int]:
        kind, _, pk = self.cleaned_data["target"].partition(":")
        return kind, int(pk)


class MessageForm(forms.Form):
    message = forms.CharField(
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Write a message…"}),
        error_messages={"required": "Write a message first."},
    )

    def clean_message(self) -> str:
        text: str = self.cleaned_data["message"]
        limit = settings.FJORDGATE_CHAT_MAX_MESSAGE_CHARS
        if len(text) > limit:
            raise forms.ValidationError(f"Keep a message to at most {limit} characters (this one has {len(text)}).")
        return text


class RenameForm(forms.Form):
    """A conversation's new title: stripped, not empty, at most the column's 200 characters (NUL is refused by
    `CharField` itself)."""

    title = forms.CharField(
        strip=True,
        max_length=ChatSession._meta.get_field("title").max_length,
        error_messages={"required": "Give the conversation a title."},
    )
