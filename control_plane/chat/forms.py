"""Chat forms: the target comes from the user's catalogue; a message is neither empty nor oversized."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from .models import agent_label
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
