"""Reads for the chat: what a user may talk to (their groups' catalogues), their sessions, a session's turns."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from control_plane.plugins.models import Plugin
from control_plane.portal.selectors import catalogue_llms

from .models import ChatMessage, ChatSession

__all__ = ["catalogue_agents", "catalogue_llms", "session_messages", "user_session", "user_sessions"]


def catalogue_agents(user: Any) -> QuerySet[Plugin]:
    """Active agent plugins that one of the user's groups' catalogues grants (the catalogue rule of LLMs)."""
    return (
        Plugin.objects.filter(Q(catalogues__group__user=user), active=True, capabilities__contains=["agent"])
        .distinct()
        .order_by("name", "slug")
    )


def user_sessions(user: Any) -> QuerySet[ChatSession]:
    return ChatSession.objects.filter(user=user).select_related("llm", "agent")


def user_session(user: Any, session_id: int) -> ChatSession:
    """The user's own session; another user's (or none) is the same 404, so ids reveal nothing."""
    return get_object_or_404(user_sessions(user), pk=session_id)


def session_messages(session: ChatSession) -> QuerySet[ChatMessage]:
    return session.messages.order_by("id")
