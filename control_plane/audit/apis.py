"""/api/v1/audit/: the audit trail, read-only, filterable by namespace, object, actor, action and time."""

from __future__ import annotations

import datetime as dt

import django_filters
import django_filters.fields
from django import forms
from rest_framework import mixins, serializers, viewsets

from control_plane.config.api import IsAdmin, request_access

from .models import AuditEntry
from .selectors import audit_entries_visible


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor_kind",
            "actor_user",
            "actor_label",
            "source",
            "remote_addr",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "namespace",
            "changes",
        ]
        read_only_fields = fields


class _BoundedIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """ISO 8601 with an offset PostgreSQL accepts (within +/-14 h), years 1-9999: a validation error otherwise,
    never a database error."""

    def to_python(self, value: str | dt.datetime | dt.date | None) -> dt.datetime | None:
        parsed: dt.datetime | None = super().to_python(value)
        offset = parsed.utcoffset() if parsed is not None else None
        if offset is not None and abs(offset) > dt.timedelta(hours=14):
            raise forms.ValidationError("Give a UTC offset within +/-14:00.", code="invalid")
        return parsed


class _BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _BoundedIsoDateTimeField


class AuditEntryFilter(django_filters.FilterSet):
    since = _BoundedIsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = _BoundedIsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["namespace", "object_type", "object_id", "action", "actor_kind", "actor_user", "source"]


class AuditEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Who changed what, when and from where. Staff only (namespace roles narrow this once they exist)."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    permission_classes = [IsAdmin]
    filterset_class = AuditEntryFilter
    search_fields = ["actor_label", "object_repr"]
    ordering_fields = ["at", "id"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return queryset
        return audit_entries_visible(queryset, access=request_access(self.request), user=self.request.user)
