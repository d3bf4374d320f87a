"""API of the config outbox: the change history, "push config now", and the snapshot an edge would receive."""

from __future__ import annotations

import msgspec
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from control_plane.config.api import IsAdmin, check_change, request_access
from control_plane.config.exceptions import PermissionRefused
from control_plane.edges.models import EdgeReloadRequest

from .models import ConfigChange
from .namespaces import validate_namespace
from .selectors import snapshot_build
from .services import config_push_now


class ConfigChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConfigChange
        fields = ["id", "namespace", "version", "reason", "created_at", "published_at"]


class PushSerializer(serializers.Serializer):
    namespace = serializers.CharField(
        max_length=63, allow_blank=True, required=False, default="", validators=[validate_namespace]
    )


class ConfigChangeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ConfigChangeSerializer
    permission_classes = [IsAdmin]
    queryset = ConfigChange.objects.order_by("-version")
    filterset_fields = ["namespace"]
    ordering_fields = ["version"]

    @extend_schema(request=PushSerializer, responses={201: ConfigChangeSerializer})
    @action(detail=False, methods=["post"])
    def push(self, request):
        """Give a namespace ("" = all) a new config version so every edge re-applies it now."""
        serializer = PushSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check_change(request, EdgeReloadRequest, serializer.validated_data["namespace"])
        change = config_push_now(namespace=serializer.validated_data["namespace"], actor=request.user.get_username())
        return Response(ConfigChangeSerializer(change).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("namespace", str, description='Namespace ("" or absent = global only)')],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=False, methods=["get"])
    def snapshot(self, request):
        """The snapshot an edge of the namespace receives (vendor keys encrypted for edges only)."""
        namespace = request.query_params.get("namespace", "")[:100]
        if not request_access(request).can_view(ConfigChange, namespace):
            raise PermissionRefused(f"You may not view namespace {namespace!r}.")
        return Response(msgspec.to_builtins(snapshot_build(namespace=namespace)))
