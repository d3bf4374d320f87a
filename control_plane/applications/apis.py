"""API of apps and credentials. Admins see everything; a user sees and manages their own apps and keys.

A non-admin may create an app (it waits for approval), change its name, description, LLMs, tools, datasources and
resources (`OWNER_FIELDS`), and manage its keys; everything else stays with the admins: approval, ownership and
namespace, and the limits they govern the app with (active or not, rate limits, allowed IPs, tags, metadata), which
an owner could otherwise lift again right after an administrator set them. A new or rotated key is in the response
once.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from control_plane.accounts.access import namespace_of
from control_plane.config.api import ServiceViewSet, actor_id, check_change, is_admin, request_access
from control_plane.config.exceptions import PermissionRefused

from .models import App, Credential
from .services import (
    KEYS_AWAIT_APPROVAL,
    app_approve,
    app_create,
    app_delete,
    app_owner_namespace,
    app_owner_resource_plugins,
    app_takes_owner_keys,
    app_update,
    credential_create,
    credential_revoke,
    credential_rotate,
)

OWNER_FIELDS = frozenset({"name", "description", "llm_ids", "tool_ids", "datasource_ids", "plugin_resources"})
"""What a self-service owner may write (an allow-list, so a field added to the serializer is admin-only)."""


class PluginResourceSerializer(serializers.Serializer):
    plugin = serializers.CharField(max_length=100)
    resource_type = serializers.CharField(max_length=100)
    resource_id = serializers.CharField(max_length=200)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    privacy_score = serializers.IntegerField(min_value=0, max_value=100, required=False)


class AppSerializer(serializers.ModelSerializer):
    owner = serializers.PrimaryKeyRelatedField(queryset=get_user_model().objects.all(), required=False, allow_null=True)
    llm_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)
    tool_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)
    datasource_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)
    tags = serializers.ListField(child=serializers.SlugField(max_length=64), required=False)
    plugin_resources = PluginResourceSerializer(many=True, required=False)
    allowed_ips = serializers.ListField(child=serializers.CharField(max_length=64), required=False)

    class Meta:
        model = App
        fields = [
            "id",
            "name",
            "description",
            "owner",
            "namespace",
            "is_active",
            "approved",
            "approved_at",
            "metadata",
            "llm_ids",
            "tool_ids",
            "datasource_ids",
            "tags",
            "plugin_resources",
            "rate_limit_rpm",
            "rate_limit_tpm",
            "user_rate_limit_rpm",
            "user_rate_limit_tpm",
            "allowed_ips",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "approved_at", "created_at", "updated_at"]

    def to_representation(self, app: App) -> dict:
        data = super().to_representation(_Flat(app))
        return data


class _Flat:
    """Presents an app's relations as the flat lists the API speaks (ids, tag names, resource dicts)."""

    def __init__(self, app: App) -> None:
        self._app = app
        self.llm_ids = sorted(x.pk for x in app.llms.all())
        self.tool_ids = sorted(x.pk for x in app.tools.all())
        self.datasource_ids = sorted(x.pk for x in app.datasources.all())
        self.tags = sorted(t.name for t in app.tags.all())
        self.plugin_resources = [
            {
                "plugin": r.plugin.slug,
                "resource_type": r.resource_type,
                "resource_id": r.resource_id,
                "name": r.name,
                "privacy_score": r.privacy_score,
            }
            for r in app.plugin_resources.all()
        ]

    def __getattr__(self, name: str):
        return getattr(self._app, name)


class AppViewSet(ServiceViewSet):
    serializer_class = AppSerializer
    permission_classes = [IsAuthenticated]
    self_service = True
    filterset_fields = ["namespace", "is_active", "approved", "owner"]
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name", "created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return App.objects.none()
        qs = App.objects.prefetch_related("llms", "tools", "datasources", "tags", "plugin_resources__plugin")
        if not is_admin(self.request):
            qs = qs.filter(owner=self.request.user)
        return qs.order_by("name", "id")

    def service_data(self, validated):
        data = dict(validated)
        if "owner" in data:
            owner = data.pop("owner")
            data["owner_id"] = owner.pk if owner else None
        if "plugin_resources" in data:
            data["plugin_resources"] = [dict(r) for r in data["plugin_resources"]]
        if not is_admin(self.request):
            refused = sorted(set(validated) - OWNER_FIELDS)
            if refused:
                raise PermissionRefused(f"Only administrators may set {', '.join(refused)}.")
            self._check_catalogue(data)
        else:
            self._check_visible(data)
        return data

    def _check_visible(self, data: dict) -> None:
        """Administrators attach only what they may see: an id of another namespace's LLM, tool or datasource is
        unknown to them, as in a read (a global app carrying a team's LLM reaches that LLM at the team's edges).
        What the app already holds (a super-administrator attached it) may be sent back as the app shows it."""
        from control_plane.catalog.models import Datasource, Tool
        from control_plane.llms.models import LLM

        access = request_access(self.request)
        app = App.objects.filter(pk=self.kwargs["pk"]).first() if "pk" in self.kwargs else None
        for field, model, relation in (
            ("llm_ids", LLM, "llms"),
            ("tool_ids", Tool, "tools"),
            ("datasource_ids", Datasource, "datasources"),
        ):
            ids = set(data.get(field) or [])
            if not ids:
                continue
            visible = set(access.filter_visible(model.objects.filter(pk__in=ids)).values_list("pk", flat=True))
            if app is not None:
                visible |= set(getattr(app, relation).values_list("pk", flat=True))
            if ids - visible:
                raise ValidationError({field: [f"Unknown ids: {sorted(ids - visible)}."]})
        self._check_visible_plugins(data, access, app)

    @staticmethod
    def _check_visible_plugins(data: dict, access, app: App | None) -> None:
        """Plugin resources likewise: only of the plugins the caller may view (another namespace's document
        collections are not its business), or of those the app already holds resources of."""
        from control_plane.plugins.models import Plugin

        slugs = {str(r.get("plugin")) for r in data.get("plugin_resources") or []}
        if not slugs:
            return
        visible = set(access.filter_visible(Plugin.objects.filter(slug__in=slugs)).values_list("slug", flat=True))
        if app is not None:
            visible |= set(app.plugin_resources.values_list("plugin__slug", flat=True))
        if slugs - visible:
            raise ValidationError({"plugin_resources": [f"Unknown plugins: {sorted(slugs - visible)}."]})

    def _check_catalogue(self, data: dict) -> None:
        """Users may only attach what their groups' catalogues offer, and resources of the plugins of "" and of
        their app's namespace (`services.app_owner_resource_plugins`)."""
        from control_plane.catalog.models import Datasource, Tool
        from control_plane.llms.models import LLM

        user = self.request.user
        for field, model in (("llm_ids", LLM), ("tool_ids", Tool), ("datasource_ids", Datasource)):
            ids = set(data.get(field) or [])
            if not ids:
                continue
            allowed = set(
                model.objects.filter(Q(catalogues__group__user=user), pk__in=ids).values_list("pk", flat=True)
            )
            if ids - allowed:
                raise PermissionRefused(f"{field}: not in your groups' catalogues: {sorted(ids - allowed)}.")
        slugs = {str(r.get("plugin")) for r in data.get("plugin_resources") or []}
        if slugs:
            app = App.objects.filter(pk=self.kwargs["pk"]).first() if "pk" in self.kwargs else None
            namespace = app.namespace if app is not None else app_owner_namespace(user)
            allowed_slugs = set(app_owner_resource_plugins(namespace).values_list("slug", flat=True))
            if app is not None:
                allowed_slugs |= set(app.plugin_resources.values_list("plugin__slug", flat=True))
            if slugs - allowed_slugs:
                raise ValidationError({"plugin_resources": [f"Unknown plugins: {sorted(slugs - allowed_slugs)}."]})

    def service_create(self, data):
        if not is_admin(self.request):
            data.update(owner_id=self.request.user.pk, approved=False, namespace=app_owner_namespace(self.request.user))
        return app_create(data=data, actor_id=actor_id(self.request))

    def service_update(self, instance, data):
        return app_update(app=instance, data=data, actor_id=actor_id(self.request))

    def service_delete(self, instance):
        app_delete(app=instance, actor_id=actor_id(self.request))

    @extend_schema(request=None, responses=AppSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve (and activate) an app; administrators only."""
        if not is_admin(request):
            raise PermissionRefused("Only administrators may approve apps.")
        app = self.get_object()
        check_change(request, App, app.namespace)
        app = app_approve(app=app, actor_id=actor_id(request))
        return Response(AppSerializer(app).data)


class CredentialSerializer(serializers.ModelSerializer):
    app = serializers.PrimaryKeyRelatedField(queryset=App.objects.all())
    is_usable = serializers.BooleanField(read_only=True)

    class Meta:
        model = Credential
        fields = [
            "id",
            "app",
            "name",
            "prefix",
            "user",
            "created_at",
            "expires_at",
            "revoked_at",
            "rotated_from",
            "is_usable",
        ]
        read_only_fields = ["id", "prefix", "user", "created_at", "revoked_at", "rotated_from", "is_usable"]


class NewCredentialSerializer(CredentialSerializer):
    key = serializers.CharField(read_only=True, help_text="The client key; shown in this response only.")

    class Meta(CredentialSerializer.Meta):
        fields = [*CredentialSerializer.Meta.fields, "key"]


class RotateSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        min_value=0,
        max_value=30 * 86400,
        required=False,
        default=0,
        help_text="Keep the old key working this many seconds (0 = revoke it now).",
    )


class CredentialViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Keys of apps. DELETE revokes (the row stays for audit); rotate returns the replacement key once."""

    serializer_class = CredentialSerializer
    permission_classes = [IsAuthenticated]
    self_service = True
    filterset_fields = ["app", "prefix"]
    search_fields = ["name", "prefix"]
    ordering_fields = ["id", "created_at", "expires_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Credential.objects.none()
        qs = Credential.objects.select_related("app").order_by("-created_at", "-id")
        if not is_admin(self.request):
            qs = qs.filter(app__owner=self.request.user)
        return qs

    @extend_schema(request=CredentialSerializer, responses={201: NewCredentialSerializer})
    def create(self, request, *args, **kwargs):
        serializer = CredentialSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        app = serializer.validated_data["app"]
        if not is_admin(request) and app.owner_id != request.user.pk:
            raise PermissionRefused("You may only create keys for your own apps.")
        self._check_change(app)
        self._check_takes_keys(app, field="app")
        credential, key = credential_create(
            app=app,
            name=serializer.validated_data.get("name", ""),
            user_id=request.user.pk,
            expires_at=serializer.validated_data.get("expires_at"),
        )
        credential.key = key
        return Response(NewCredentialSerializer(credential).data, status=status.HTTP_201_CREATED)

    def _check_takes_keys(self, app: App, field: str | None = None) -> None:
        """As the portal: the owner of an app awaiting approval or deactivated gets no new key, neither created nor
        rotated (a rotated key starts working the moment the app is (re)activated); administrators who may change,
        so approve, the app still do. Revoking is not refused: it only takes access away."""
        if not app_takes_owner_keys(app) and not request_access(self.request).can_change(App, namespace_of(app)):
            raise ValidationError({field: [KEYS_AWAIT_APPROVAL]} if field else [KEYS_AWAIT_APPROVAL])

    def _check_change(self, app: App) -> None:
        """Administrators write keys only in namespaces they may change; owners (self-service) their own."""
        if is_admin(self.request):
            check_change(self.request, Credential, namespace_of(app))

    def get_object(self):
        credential = super().get_object()
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            self._check_change(credential.app)
        return credential

    def perform_destroy(self, instance):
        credential_revoke(credential=instance)

    @extend_schema(request=None, responses=CredentialSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        return Response(CredentialSerializer(credential_revoke(credential=self.get_object())).data)

    @extend_schema(request=RotateSerializer, responses={201: NewCredentialSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        serializer = RotateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credential = self.get_object()
        self._check_takes_keys(credential.app)  # a rotation mints a key as a creation does
        new, key = credential_rotate(
            credential=credential, grace_seconds=serializer.validated_data.get("grace_seconds", 0)
        )
        new.key = key
        return Response(NewCredentialSerializer(new).data, status=status.HTTP_201_CREATED)
