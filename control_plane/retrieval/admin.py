"""Documents in the admin: add one to a datasource (text or file), see its chunks, delete it. A document is not
edited in place: its chunks and vectors follow its text, so a change is a delete and a new upload."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from control_plane.hooks.admin_mixins import ServiceAdminMixin

from .forms import DocumentAddForm
from .models import Document
from .services import document_add, document_delete


@admin.register(Document)
class DocumentAdmin(ServiceAdminMixin, admin.ModelAdmin):
    object_type = None
    form = DocumentAddForm
    list_display = ["title", "datasource", "chars", "chunk_count", "embedding_model", "created_at"]
    list_filter = ["datasource"]
    search_fields = ["title", "datasource__slug"]
    autocomplete_fields = ["datasource"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("datasource").annotate(chunk_total=Count("chunks"))

    @admin.display(description="chunks", ordering="chunk_total")
    def chunk_count(self, obj) -> int:
        return obj.chunk_total

    def has_change_permission(self, request, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["datasource", "title", "text", "file"]
        return ["datasource", "title", "chars", "embedding_llm", "embedding_model", "dimensions", "added_by"]

    def service_data(self, form, obj):
        return {k: form.cleaned_data.get(k) for k in ("datasource", "title", "text")}

    def service_save(self, request, obj, data, outcome):
        return document_add(**data, actor_id=request.user.pk)

    def service_delete(self, request, obj):
        document_delete(document=obj)
