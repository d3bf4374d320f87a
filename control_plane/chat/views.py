"""The chat's pages under /portal/chat/: sessions, a conversation, posting a turn, its reply stream (SSE), and
renaming or deleting a conversation.

Posting is a CSRF-checked POST that only stores the turn; the reply is a GET `text/event-stream` that an
EventSource opens (`static/chat/chat.js`), served by an async view so that under uvicorn (`fjordgate web`) each
chunk leaves as it is produced and a closed page cancels the reply (see `stream.py`).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from .access import chat_allowed, chat_view
from .forms import MessageForm, NewSessionForm, RenameForm
from .markdown import render
from .models import ChatMessage, ChatSession
from .selectors import session_messages, user_session, user_sessions
from .services import message_post, session_delete, session_rename, session_start
from .stream import reply_events


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("accept", "")


SESSIONS_PER_PAGE = 100


def _index(request: HttpRequest, form: NewSessionForm, status: int = 200) -> HttpResponse:
    """The newest sessions, a page at a time (`?page=`; a page past the end or not a number is the last or first):
    a user's 101st conversation and older were listed nowhere."""
    sessions = Paginator(user_sessions(request.user), SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"sessions": sessions, "form": form}
    return TemplateResponse(request, "chat/index.html", context, status=status)


@chat_view
def index(request: HttpRequest) -> HttpResponse:
    return _index(request, NewSessionForm(user=request.user))


@require_POST
@chat_view
def session_new(request: HttpRequest) -> HttpResponse:
    form = NewSessionForm(request.POST, user=request.user)
    if form.is_valid():
        kind, target_id = form.chosen()
        try:
            session = session_start(user=request.user, kind=kind, target_id=target_id)
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error("target", message)
        else:
            return redirect("chat:session", session_id=session.pk)
    return _index(request, form, status=400)


def _session_page(
    request: HttpRequest,
    session: ChatSession,
    form: MessageForm,
    status: int = 200,
    rename_form: RenameForm | None = None,
) -> HttpResponse:
    messages = list(session_messages(session))
    for message in messages:  # a reply's text as Markdown, rendered here: the page shows it without JavaScript
        if message.role == ChatMessage.Role.ASSISTANT:
            for part in message.parts:
                if part.get("type") == "content":
                    part["html"] = render(str(part.get("content") or ""))
    pending = any(m.role == ChatMessage.Role.USER and m.status == ChatMessage.Status.PENDING for m in messages)
    context = {
        "session": session,
        "chat_messages": messages,
        "form": form,
        "rename_form": rename_form or RenameForm(initial={"title": session.title}),
        "pending": pending,
        "stream_url": reverse("chat:stream", kwargs={"session_id": session.pk}),
    }
    return TemplateResponse(request, "chat/session.html", context, status=status)


@chat_view
def session_detail(request: HttpRequest, session_id: int) -> HttpResponse:
    return _session_page(request, user_session(request.user, session_id), MessageForm())


@require_POST
@chat_view
def message_create(request: HttpRequest, session_id: int) -> HttpResponse:
    """Store the user's turn. With `Accept: application/json` (the page's script) the answer is JSON: 201 with
    the stream's URL, or 400 with the form's errors; without it, the page itself (errors inline, or a redirect
    to the page, which opens the stream for the pending turn)."""
    session = user_session(request.user, session_id)
    form = MessageForm(request.POST)
    if form.is_valid():
        try:
            message = message_post(session=session, text=form.cleaned_data["message"])
        except ValidationError as exc:
            for text in exc.messages:
                form.add_error(None, text)
        else:
            if _wants_json(request):
                stream = reverse("chat:stream", kwargs={"session_id": session.pk})
                return JsonResponse({"id": message.pk, "stream_url": stream}, status=201)
            return redirect("chat:session", session_id=session.pk)
    if _wants_json(request):
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    return _session_page(request, session, form, status=400)


@require_POST
@chat_view
def rename(request: HttpRequest, session_id: int) -> HttpResponse:
    session = user_session(request.user, session_id)
    form = RenameForm(request.POST)
    if not form.is_valid():
        return _session_page(request, session, MessageForm(), status=400, rename_form=form)
    session_rename(session=session, title=form.cleaned_data["title"])
    return redirect("chat:session", session_id=session.pk)


@require_POST
@chat_view
def delete(request: HttpRequest, session_id: int) -> HttpResponse:
    session = user_session(request.user, session_id)
    title = session.title or "New conversation"
    session_delete(session=session)
    flash.success(request, f"Conversation {title!r} deleted, with its messages.")
    return redirect("chat:index")


def _owned_session(user: Any, session_id: int) -> bool:
    return ChatSession.objects.filter(pk=session_id, user=user).exists()


@require_GET
async def session_stream(request: HttpRequest, session_id: int) -> HttpResponse | StreamingHttpResponse:
    """The reply to the session's pending turn as server-sent events (see `stream.reply_events`)."""
    user = await request.auser()
    if user.pk is None or not await sync_to_async(chat_allowed)(user):
        return HttpResponse("Sign in to the portal to chat.", status=403, content_type="text/plain")
    if not await sync_to_async(_owned_session)(user, session_id):
        raise Http404("No such chat session.")
    response = StreamingHttpResponse(
        reply_events(user_id=user.pk, session_id=session_id), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not hold the events back
    return response
