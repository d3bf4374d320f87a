"""Writes of the chat: start, rename and delete a session, post a user turn, claim it for a reply stream, store
the reply.

A reply is streamed by a GET (EventSource), so the POST that carries the user's text (CSRF-checked) only stores
it as `pending`; the stream then claims the oldest pending turn of the session under a row lock, so a page open
twice or a reconnecting EventSource never answers one turn twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from control_plane.catalog.tool_operations import ToolOperation, tool_operations
from control_plane.portal.selectors import catalogue_datasources, catalogue_tools
from shared_sdk.messages import LLM, AgentHistoryMessage, Datasource, Tool

from .models import ChatMessage, ChatSession
from .selectors import catalogue_agents, catalogue_llms

TITLE_CHARS = 60
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""What PostgreSQL's text and jsonb cannot hold (NUL) or UTF-8 cannot encode (a lone surrogate)."""


def _storable(value: Any) -> Any:
    """`value` (a reply's text or parts) with each unstorable character replaced by U+FFFD.

    A reply is what an LLM, a tool's server or an agent plugin sent, so it may hold them (a tool answering binary
    bytes, an LLM echoing them); the user already saw the reply streamed, and storing it failed: the turn stayed
    "streaming", the reply was gone on the next visit and the next message was refused until the turn went stale.
    """
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Turn:
    """One claimed user turn and what answering it needs, read before the stream starts."""

    session_id: int
    user_id: int
    user_message_id: int
    reply_id: int
    text: str
    history: list[AgentHistoryMessage]
    llm_id: int | None
    agent_slug: str
    agent_config: dict[str, Any]
    available_llms: list[LLM]
    available_tools: list[Tool] = dataclasses.field(default_factory=list)
    available_datasources: list[Datasource] = dataclasses.field(default_factory=list)
    tool_operations: list[ToolOperation] = dataclasses.field(default_factory=list)
    """What an LLM turn offers the LLM to call (an agent gets `available_tools` and calls them itself)."""
    request_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)


def session_start(*, user: Any, kind: str, target_id: int) -> ChatSession:
    """A new session with an LLM or agent of the user's catalogue (checked again here, not only in the form)."""
    if kind == "llm":
        llm = catalogue_llms(user).filter(pk=target_id).first()
        if llm is None:
            raise ValidationError("That LLM is not in your catalogue.")
        return ChatSession.objects.create(user=user, llm=llm)
    agent = catalogue_agents(user).filter(pk=target_id).first()
    if agent is None:
        raise ValidationError("That agent is not in your catalogue.")
    return ChatSession.objects.create(user=user, agent=agent)


def session_rename(*, session: ChatSession, title: str) -> ChatSession:
    """The user's own title; a later first message no longer names the conversation."""
    session.title = title
    session.save(update_fields=["title", "updated_at"])
    return session


def session_delete(*, session: ChatSession) -> None:
    """The session and all its turns. A reply still streaming for it ends normally: its writes (`turn_finish`)
    are updates by id, which find no row."""
    session.delete()


def _usable(session: ChatSession) -> None:
    """The session's target must still exist and still be granted to its user."""
    user = session.user
    if session.llm_id is not None and catalogue_llms(user).filter(pk=session.llm_id).exists():
        return
    if session.agent_id is not None and catalogue_agents(user).filter(pk=session.agent_id).exists():
        return
    raise ValidationError(f"This conversation cannot continue: {session.target_label} is no longer available to you.")


def message_post(*, session: ChatSession, text: str) -> ChatMessage:
    """Store the user's turn as pending. Refused while the previous turn is still being answered (a stream that
    started longer ago than the reply timeout is over, whatever its row says)."""
    _usable(session)
    stale = timezone.now() - dt.timedelta(seconds=settings.FJORDGATE_CHAT_TIMEOUT_S + 30)
    with transaction.atomic():
        ChatSession.objects.select_for_update().filter(pk=session.pk).first()
        busy = session.messages.filter(
            role=ChatMessage.Role.USER,
            status__in=[ChatMessage.Status.PENDING, ChatMessage.Status.STREAMING],
            created_at__gt=stale,
        ).exists()
        if busy:
            raise ValidationError("Wait for the reply to your last message before sending another.")
        message = ChatMessage.objects.create(
            session=session, role=ChatMessage.Role.USER, content=text, status=ChatMessage.Status.PENDING
        )
        if not session.title:
            session.title = text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"
        session.save(update_fields=["title", "updated_at"])
    return message


def _sdk_llm(llm: Any) -> LLM:
    return LLM(
        id=llm.pk,
        slug=llm.slug,
        name=llm.name,
        vendor=llm.vendor,
        default_model=llm.default_model,
        allowed_models=list(llm.allowed_models),
        privacy_score=llm.privacy_score,
        namespace=llm.namespace,
    )


def _history(session: ChatSession, before_id: int) -> list[AgentHistoryMessage]:
    """Earlier turns that got an answer (text only; a turn whose reply failed is left out with its reply)."""
    history = []
    for message in session.messages.filter(id__lt=before_id).order_by("id"):
        if message.role == ChatMessage.Role.USER and message.status != ChatMessage.Status.ANSWERED:
            continue
        if message.role == ChatMessage.Role.ASSISTANT and message.status != ChatMessage.Status.DONE:
            continue
        history.append(AgentHistoryMessage(role=message.role, content=message.content))
    return history


def _llm_tool_operations(session: ChatSession) -> list[ToolOperation]:
    """The operations of the user's catalogue tools that this LLM may see: the apps' privacy rule holds here too
    (no tool more private than the LLM), and none at all when chat tool rounds are switched off."""
    llm = session.llm
    if llm is None or settings.FJORDGATE_CHAT_TOOL_ROUNDS == 0:
        return []
    tools = catalogue_tools(session.user).filter(privacy_score__lte=llm.privacy_score)
    return tool_operations(list(tools))


def turn_claim(*, user_id: int, session_id: int) -> Turn | None:
    """Claim the session's oldest pending turn for a reply stream and create the reply's row; None when no turn
    waits (already answered, or another stream took it). The session must be the user's (else `DoesNotExist`)."""
    with transaction.atomic():
        session = ChatSession.objects.select_related("llm", "agent", "user").get(pk=session_id, user_id=user_id)
        message = (
            session.messages.select_for_update(skip_locked=True)
            .filter(role=ChatMessage.Role.USER, status=ChatMessage.Status.PENDING)
            .order_by("id")
            .first()
        )
        if message is None:
            return None
        try:
            _usable(session)
        except ValidationError as exc:
            message.status = ChatMessage.Status.ERROR
            message.save(update_fields=["status"])
            ChatMessage.objects.create(
                session=session,
                role=ChatMessage.Role.ASSISTANT,
                status=ChatMessage.Status.ERROR,
                parts=[{"type": "error", "content": " ".join(exc.messages)}],
            )
            raise
        message.status = ChatMessage.Status.STREAMING
        message.save(update_fields=["status"])
        reply = ChatMessage.objects.create(
            session=session, role=ChatMessage.Role.ASSISTANT, status=ChatMessage.Status.STREAMING
        )
        agent = session.agent
        return Turn(
            session_id=session.pk,
            user_id=user_id,
            user_message_id=message.pk,
            reply_id=reply.pk,
            text=message.content,
            history=_history(session, message.pk),
            llm_id=session.llm_id,
            agent_slug=agent.slug if agent is not None else "",
            agent_config=dict(agent.config or {}) if agent is not None else {},
            available_llms=[_sdk_llm(x) for x in catalogue_llms(session.user)],
            available_tools=[
                Tool(
                    id=t.pk,
                    slug=t.slug,
                    name=t.name,
                    description=t.description,
                    privacy_score=t.privacy_score,
                    operations=[str(o) for o in t.operations],
                )
                for t in catalogue_tools(session.user)
            ],
            available_datasources=[
                Datasource(id=d.pk, slug=d.slug, name=d.name, description=d.description, privacy_score=d.privacy_score)
                for d in catalogue_datasources(session.user)
            ],
            tool_operations=_llm_tool_operations(session),
        )


def turn_finish(*, turn: Turn, content: str, parts: list[dict[str, Any]], status: str) -> None:
    """Store the reply as it ended (done, error or cancelled); the user's turn is answered when the reply is
    done, else it keeps the reply's outcome (and both stay out of the history later turns send). Characters the
    database cannot hold are stored as U+FFFD (`_storable`)."""
    answered = ChatMessage.Status.ANSWERED if status == ChatMessage.Status.DONE else status
    with transaction.atomic():
        ChatMessage.objects.filter(pk=turn.reply_id).update(
            content=_storable(content), parts=_storable(parts), status=status
        )
        ChatMessage.objects.filter(pk=turn.user_message_id).update(status=answered)
        ChatSession.objects.filter(pk=turn.session_id).update(updated_at=timezone.now())
