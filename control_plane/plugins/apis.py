"""API of plugins (administrators only). Capabilities, manifest and schema are read from the plugin itself."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from control_plane.audit.recorder import redact_secret_keys
from control_plane.config.api import IsAdmin, ServiceViewSet, request_access

from .models import Plugin
from .resources import resource_instances, resource_types
from .services import plugin_delete, plugin_register, plugin_update
from .sources import plugin_code_changes_note


class PluginSerializer(serializers.ModelSerializer):
    command = serializers.ListField(child=serializers.CharField(max_length=1000), required=False)
    config = serializers.JSONField(required=False)
    extra_scopes = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    code_changes = serializers.SerializerMethodField(help_text="When a new version of the plugin's code runs.")

    def get_code_changes(self, obj: Plugin) -> str:
        return plugin_code_changes_note(obj)

    def to_representation(self, instance: Plugin) -> dict:
        """The config's secret-looking values (a token-auth plugin's client tokens, a service's API key) only to
        those who may change the plugin: a viewer of its namespace, or any role holder for a global plugin, read
        them in the clear and could call the edge as the apps they authenticate."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is not None and not request_access(request).can_change(Plugin, instance.namespace):
            data["config"] = redact_secret_keys(data.get("config"))
        return data

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


def _visible_plugins(request: Request) -> QuerySet[Plugin]:
    """The plugins whose resources this caller may list: those of the namespaces it may view (and global ones where
    it may view those), as for the plugins themselves; another namespace's collections are not its business."""
    return request_access(request).filter_visible(Plugin.objects.all())


class ResourceTypesView(APIView):
    """`GET /api/v1/resources/types/`: the resource types of active `ResourceProvider` plugins (administrators)."""

    permission_classes = [IsAdmin]

    @extend_schema(operation_id="resources_types_list", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response({"results": resource_types(_visible_plugins(request))})


class ResourceInstancesView(APIView):
    """`GET /api/v1/resources/types/<type>/`: that type's instances, asked from the plugins that provide it.

    A plugin that cannot answer is reported in `problems` (the others' instances are still listed); an unknown
    type is 404."""

    permission_classes = [IsAdmin]

    @extend_schema(operation_id="resources_instances_list", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, type_slug: str) -> Response:
        plugins = _visible_plugins(request)
        if not any(t["slug"] == type_slug for t in resource_types(plugins)):
            raise NotFound(f"No resource type {type_slug!r}.")
        instances, problems = resource_instances(type_slug, plugins)
        return Response({"results": instances, "problems": problems})
