"""API of LLMs and their plugin chains. Vendor keys are write-only: responses say only whether one is set."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import transaction
from django.db.models import Q
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from control_plane.audit.recorder import redact_secret_keys
from control_plane.config.api import AdminOrReadOnly, ServiceViewSet, actor_id, is_admin, request_access
from control_plane.plugins.models import Plugin

from .models import LLM, LLMPluginBinding
from .services import PluginChainItemRefused, llm_create, llm_delete, llm_set_plugin_chain, llm_update


class PluginBindingSerializer(serializers.ModelSerializer):
    plugin = serializers.SlugRelatedField(slug_field="slug", queryset=Plugin.objects.all())

    class Meta:
        model = LLMPluginBinding
        fields = ["plugin", "order_index", "is_active", "config_override"]

    def validate(self, attrs):
        # A PATCH makes nested items partial too, but a chain item without its plugin means nothing.
        if "plugin" not in attrs:
            raise serializers.ValidationError({"plugin": "This field is required."}, code="required")
        return attrs


class LLMSerializer(serializers.ModelSerializer):
    api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        max_length=4096,
        help_text="The vendor API key; stored encrypted and never returned. Send an empty string to remove it.",
    )
    has_api_key = serializers.BooleanField(read_only=True)
    allowed_models = serializers.ListField(child=serializers.CharField(max_length=500), required=False)
    plugin_chain = PluginBindingSerializer(many=True, required=False, source="plugin_bindings")

    class Meta:
        model = LLM
        fields = [
            "id",
            "name",
            "slug",
            "vendor",
            "api_endpoint",
            "api_key",
            "has_api_key",
            "default_model",
            "allowed_models",
            "privacy_score",
            "is_active",
            "namespace",
            "metadata",
            "fallbacks",
            "max_retries",
            "connect_timeout_s",
            "first_byte_timeout_s",
            "max_response_bytes",
            "weight",
            "priority",
            "breaker_cooldown_s",
            "plugin_chain",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def to_representation(self, instance: LLM) -> dict:
        """The chain's config overrides and the metadata with their secret-looking values redacted for those who
        may not change the LLM (a viewer of its namespace, a user of a catalogue that offers it): an override may
        hold a guardrail service's API key, as a plugin's own config may (`plugins/apis.py`)."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is not None and not request_access(request).can_change(LLM, instance.namespace):
            data["metadata"] = redact_secret_keys(data.get("metadata"))
            for item in data.get("plugin_chain") or ():
                item["config_override"] = redact_secret_keys(item.get("config_override"))
        return data


class LLMViewSet(ServiceViewSet):
    """Admins manage every LLM; other users see the LLMs their groups' catalogues offer."""

    serializer_class = LLMSerializer
    permission_classes = [AdminOrReadOnly]
    self_service = True  # non-administrators read their groups' catalogues
    filterset_fields = ["namespace", "vendor", "is_active", "slug"]
    search_fields = ["name", "slug", "default_model"]
    ordering_fields = ["id", "slug", "name", "privacy_score", "created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return LLM.objects.none()
        qs = LLM.objects.prefetch_related("plugin_bindings__plugin").order_by("slug")
        user = self.request.user
        if not is_admin(self.request):
            qs = qs.filter(Q(catalogues__group__user=user)).distinct()
        return qs

    def service_data(self, validated):
        """A chain takes only the plugins the caller may view (another namespace's plugin in a chain is loaded with
        its config by this LLM's edges), or those already in the LLM's chain, as an app takes LLMs."""
        chain = validated.get("plugin_bindings") or []
        slugs = {item["plugin"].slug for item in chain if isinstance(item, dict) and item.get("plugin") is not None}
        if slugs:
            visible = set(
                request_access(self.request)
                .filter_visible(Plugin.objects.filter(slug__in=slugs))
                .values_list("slug", flat=True)
            )
            if "pk" in self.kwargs:
                visible |= set(
                    LLMPluginBinding.objects.filter(llm_id=self.kwargs["pk"]).values_list("plugin__slug", flat=True)
                )
            if slugs - visible:
                raise ValidationError({"plugin_chain": [f"Unknown plugins: {sorted(slugs - visible)}."]})
        return dict(validated)

    def _split(self, data: dict) -> tuple[dict, list | None]:
        chain = data.pop("plugin_bindings", None)
        return data, chain

    def service_create(self, data):
        data, chain = self._split(data)
        with _chain_errors_on_items(chain), transaction.atomic():  # a refused chain leaves no LLM behind
            llm = llm_create(data=data, actor_id=actor_id(self.request))
            if chain is not None:
                llm_set_plugin_chain(llm=llm, chain=chain)
        return llm

    def service_update(self, instance, data):
        data, chain = self._split(data)
        with _chain_errors_on_items(chain), transaction.atomic():  # a refused chain leaves the LLM as it was
            llm = llm_update(llm=instance, data=data, actor_id=actor_id(self.request))
            if chain is not None:
                llm_set_plugin_chain(llm=llm, chain=chain)
        return llm

    def service_delete(self, instance):
        llm_delete(llm=instance, actor_id=actor_id(self.request))


@contextlib.contextmanager
def _chain_errors_on_items(chain: list | None) -> Iterator[None]:
    """A chain item the service refused, answered on that item as DRF answers a nested field: `plugin_chain` lists
    one entry per item, `{}` for those that passed."""
    try:
        yield
    except PluginChainItemRefused as exc:
        items: list[dict] = [{} for _ in chain or ()]
        items[exc.index] = exc.message_dict
        raise ValidationError({"plugin_chain": items}) from None
