"""API of plugins (administrators only). Capabilities, manifest and schema are read from the plugin itself."""

from __future__ import annotations

from rest_framework import serializers

from control_plane.config.api import IsAdmin, ServiceViewSet

from .models import Plugin
from .services import plugin_delete, plugin_register, plugin_update
from .sources import plugin_code_changes_note


class PluginSerializer(serializers.ModelSerializer):
    command = serializers.ListField(child=serializers.CharField(max_length=1000), required=False)
    config = serializers.JSONField(required=False)
    extra_scopes = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    code_changes = serializers.SerializerMethodField(help_text="When a new version of the plugin's code runs.")

    def get_code_changes(self, obj: Plugin) -> str:
        return plugin_code_changes_note(obj)

    class Meta:
        model = Plugin
        fields = [
            "id",
            "slug",
            "name",
            "version",
            "description",
            "entry_point",
            "import_path",
            "isolated",
            "command",
            "config",
            "failure_policy",
            "timeout_ms",
            "namespace",
            "active",
            "global_order",
            "extra_scopes",
            "capabilities",
            "manifest",
            "config_schema",
            "hook_registrations",
            "code_changes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "capabilities",
            "manifest",
            "config_schema",
            "hook_registrations",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"name": {"required": False}}


class PluginViewSet(ServiceViewSet):
    serializer_class = PluginSerializer
    permission_classes = [IsAdmin]
    queryset = Plugin.objects.order_by("slug")
    filterset_fields = ["namespace", "active", "failure_policy", "slug"]
    search_fields = ["slug", "name", "description"]
    ordering_fields = ["id", "slug", "global_order", "created_at"]

    def service_create(self, data):
        return plugin_register(data=data)

    def service_update(self, instance, data):
        return plugin_update(plugin=instance, data=data)

    def service_delete(self, instance):
        plugin_delete(plugin=instance)
