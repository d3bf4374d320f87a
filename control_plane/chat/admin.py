"""Chat sessions in the admin: read-only, for support (what did the user see?); users write them in the portal.

A session lives in the namespace of what it talks to (its LLM or agent plugin), so a role holder reads only the
conversations with the LLMs and agents of namespaces it may view: the access policy counted sessions as global
objects (they name no namespace of their own), and a viewer of one namespace read everyone's conversations with
every namespace's LLMs. A session whose LLM or agent was deleted is a super-administrator's to read.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q

from control_plane.accounts.access import ALL
from control_plane.accounts.admin_access import request_user_access

from .models import ChatMessage, ChatSession


class ChatMessageInline(admin.TabularInline):
    model = ChatMessage
    extra = 0
    can_delete = False
    fields = ("role", "status", "content", "parts", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "user", "llm", "agent", "updated_at"]
    list_filter = ["llm", "agent"]
    search_fields = ["title", "user__username"]
    readonly_fields = ["user", "title", "llm", "agent", "created_at", "updated_at"]
    inlines = [ChatMessageInline]

    def has_add_permission(self, request) -> bool:
        return False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        allowed = request_user_access(request).viewable("chat.chatsession")
        if allowed is ALL:
            return queryset
        namespaces = sorted(allowed)
        return queryset.filter(Q(llm__namespace__in=namespaces) | Q(agent__namespace__in=namespaces))
