"""/api/v1/edges/: the edge registry (read-only: edges register themselves) and reload requests."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from control_plane.config.api import IsAdmin, check_change

from .models import EdgeInstance, EdgeReloadRequest
from .serializers import EdgeInstanceSerializer, NamespaceReloadSerializer
from .services import edge_reload_request


class EdgeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = EdgeInstance.objects.all()
    serializer_class = EdgeInstanceSerializer
    permission_classes = [IsAdmin]
    filterset_fields = ["namespace", "status"]
    search_fields = ["edge_id", "host"]
    ordering_fields = ["edge_id", "namespace", "last_heartbeat", "status"]

    @extend_schema(
        operation_id="edges_reload_one",
        request=None,
        responses={
            202: inline_serializer(
                "EdgeReloadAccepted", {"reload_id": serializers.IntegerField(), "edge_id": serializers.CharField()}
            )
        },
    )
    @action(detail=True, methods=["post"])
    def reload(self, request, pk=None):
        """Ask this edge to re-read and re-apply its namespace's config."""
        edge = self.get_object()
        check_change(request, EdgeInstance, edge.namespace)
        reload = edge_reload_request(
            namespace=edge.namespace, edge_id=edge.edge_id, requested_by=request.user.get_username()
        )
        return Response({"reload_id": reload.pk, "edge_id": edge.edge_id}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="edges_reload_namespace",
        responses={
            202: inline_serializer(
                "NamespaceReloadAccepted",
                {"reload_id": serializers.IntegerField(), "namespace": serializers.CharField()},
            )
        },
    )
    @action(detail=False, methods=["post"], url_path="reload", serializer_class=NamespaceReloadSerializer)
    def reload_namespace(self, request):
        """Ask every edge of a namespace to re-apply its config."""
        serializer = NamespaceReloadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        namespace = serializer.validated_data["namespace"]
        check_change(request, EdgeReloadRequest, namespace)
        reload = edge_reload_request(namespace=namespace, requested_by=request.user.get_username())
        return Response({"reload_id": reload.pk, "namespace": namespace}, status=status.HTTP_202_ACCEPTED)
