"""API of tools, datasources, tags and model prices."""

from __future__ import annotations

from django.db.models import Q
from rest_framework import serializers

from control_plane.config.api import AdminOrReadOnly, IsAdmin, ServiceViewSet, actor_id, is_admin

from .models import Datasource, ModelPrice, Tag, Tool
from .services import (
    datasource_create,
    datasource_delete,
    datasource_update,
    model_price_delete,
    model_price_upsert,
    tag_delete,
    tag_get_or_create,
    tool_create,
    tool_delete,
    tool_update,
)


class ToolSerializer(serializers.ModelSerializer):
    auth_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        max_length=4096,
        help_text=(
            "The tool API's credential, sent where the spec's security scheme says; stored encrypted and never "
            "returned. Send an empty string to remove it."
        ),
    )
    has_auth_key = serializers.BooleanField(read_only=True)

    class Meta:
        model = Tool
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "namespace",
            "privacy_score",
            "openapi_spec",
            "operations",
            "auth_key",
            "has_auth_key",
            "is_active",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class DatasourceSerializer(serializers.ModelSerializer):
    embedding_llm_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1)

    class Meta:
        model = Datasource
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "namespace",
            "privacy_score",
            "vector_store",
            "embedding_llm_id",
            "embedder",
            "is_active",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name"]


class ModelPriceSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelPrice
        fields = [
            "id",
            "vendor",
            "model",
            "prompt_per_million",
            "completion_per_million",
            "cache_read_per_million",
            "cache_write_per_million",
            "currency",
            "max_output_tokens",
            "max_input_tokens",
            "updated_at",
        ]
        read_only_fields = ["id", "updated_at"]


class _CatalogueScoped(ServiceViewSet):
    permission_classes = [AdminOrReadOnly]
    self_service = True  # non-administrators read their groups' catalogues
    filterset_fields = ["namespace", "is_active", "slug"]
    search_fields = ["name", "slug", "description"]
    ordering_fields = ["id", "slug", "privacy_score", "created_at"]
    model: type[Tool] | type[Datasource] = Tool

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return self.model.objects.none()
        qs = self.model.objects.order_by("slug")
        if not is_admin(self.request):
            qs = qs.filter(Q(catalogues__group__user=self.request.user)).distinct()
        return qs


class ToolViewSet(_CatalogueScoped):
    serializer_class = ToolSerializer
    model = Tool

    def service_create(self, data):
        return tool_create(data=data, actor_id=actor_id(self.request))

    def service_update(self, instance, data):
        return tool_update(tool=instance, data=data, actor_id=actor_id(self.request))

    def service_delete(self, instance):
        tool_delete(tool=instance, actor_id=actor_id(self.request))


class DatasourceViewSet(_CatalogueScoped):
    serializer_class = DatasourceSerializer
    model = Datasource

    def service_create(self, data):
        return datasource_create(data=data, actor_id=actor_id(self.request))

    def service_update(self, instance, data):
        return datasource_update(datasource=instance, data=data, actor_id=actor_id(self.request))

    def service_delete(self, instance):
        datasource_delete(datasource=instance, actor_id=actor_id(self.request))


class TagViewSet(ServiceViewSet):
    serializer_class = TagSerializer
    permission_classes = [AdminOrReadOnly]
    self_service = True  # everyone signed in reads tags; writes check the policy (tags are global)
    queryset = Tag.objects.order_by("name")
    search_fields = ["name"]
    http_method_names = ["get", "post", "delete", "head", "options"]

    def service_create(self, data):
        return tag_get_or_create(name=data["name"])

    def service_delete(self, instance):
        tag_delete(tag=instance)


class ModelPriceViewSet(ServiceViewSet):
    serializer_class = ModelPriceSerializer
    permission_classes = [IsAdmin]
    queryset = ModelPrice.objects.order_by("vendor", "model")
    filterset_fields = ["vendor", "model", "currency"]
    search_fields = ["vendor", "model"]

    def service_create(self, data):
        return model_price_upsert(data=data)

    def service_update(self, instance, data):
        return model_price_upsert(data=data, price=instance)

    def service_delete(self, instance):
        model_price_delete(price=instance)
