"""Chat sessions in the admin: read-only, for support (what did the user see?); users write them in the portal."""

from __future__ import annotations

from django.contrib import admin

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
