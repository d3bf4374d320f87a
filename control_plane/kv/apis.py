"""Read-only API over the studio KV store, for administrators inspecting what plugins keep."""

from __future__ import annotations

import base64

from django.db.models import Q
from django.utils import timezone
from rest_framework import mixins, serializers, viewsets

from control_plane.config.api import IsAdmin, request_access

from .models import KVEntry
from .selectors import kv_entries_visible


class KVEntrySerializer(serializers.ModelSerializer):
    size = serializers.SerializerMethodField()
    value_base64 = serializers.SerializerMethodField()

    class Meta:
        model = KVEntry
        fields = ["id", "plugin_slug", "key", "size", "value_base64", "expires_at", "created_at", "updated_at"]

    def get_size(self, entry) -> int:
        return len(entry.value)

    def get_value_base64(self, entry) -> str:
        return base64.b64encode(bytes(entry.value)).decode()


class KVEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = KVEntrySerializer
    permission_classes = [IsAdmin]
    filterset_fields = {"plugin_slug": ["exact"], "key": ["exact", "startswith"]}
    search_fields = ["key"]

    def get_queryset(self):
        """Live entries of the plugins whose namespace the caller may view (`selectors.kv_entries_visible`)."""
        live = KVEntry.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        return kv_entries_visible(live, request_access(self.request)).order_by("plugin_slug", "key")
