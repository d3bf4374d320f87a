"""API of users and groups (with their catalogues); administrators only, except `GET /users/me/`."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from control_plane.catalog.models import Datasource, Tool
from control_plane.config.api import IsAdmin, ServiceViewSet, actor_id, request_access
from control_plane.config.exceptions import PermissionRefused
from control_plane.config.json_fields import validate_json_object
from control_plane.llms.models import LLM
from control_plane.plugins.models import Plugin
from control_plane.sync.namespaces import validate_namespace

from .access import user_takeover_refusal
from .models import Catalogue, Profile
from .services import (
    SUPERUSER_GUARD_MESSAGE,
    catalogue_set,
    group_delete,
    group_save,
    user_create,
    user_delete,
    user_update,
)

User = get_user_model()


class UserSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, required=False, style={"input_type": "password"}, max_length=128)
    groups = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Group.objects.all(), required=False)
    metadata = serializers.JSONField(required=False, validators=[validate_json_object])
    show_portal = serializers.BooleanField(required=False)
    show_chat = serializers.BooleanField(required=False)
    app_namespace = serializers.CharField(
        validators=[validate_namespace],
        max_length=63,
        allow_blank=True,
        required=False,
        help_text="Where this user's self-service apps are created",
    )

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "password",
            "is_active",
            "is_staff",
            "is_superuser",
            "groups",
            "metadata",
            "show_portal",
            "show_chat",
            "app_namespace",
            "date_joined",
            "last_login",
        ]
        read_only_fields = ["id", "date_joined", "last_login"]

    def to_representation(self, user):
        data = super().to_representation(user)
        profile = Profile.objects.filter(user=user).first()
        data["metadata"] = profile.metadata if profile else {}
        data["show_portal"] = profile.show_portal if profile else True
        data["show_chat"] = profile.show_chat if profile else True
        data["app_namespace"] = profile.app_namespace if profile else ""
        return data


class UserViewSet(ServiceViewSet):
    serializer_class = UserSerializer
    permission_classes = [IsAdmin]
    filterset_fields = ["is_active", "is_staff", "username", "email"]
    search_fields = ["username", "email", "first_name", "last_name"]
    ordering_fields = ["id", "username", "date_joined"]

    def get_permissions(self):
        if self.action == "me":
            return [IsAuthenticated()]
        return super().get_permissions()

    def get_queryset(self):
        return User.objects.prefetch_related("groups").order_by("username")

    def service_data(self, validated):
        data = dict(validated)
        if "groups" in data:
            data["groups"] = [g.name for g in data["groups"]]
        return data

    def _guard_superusers(self, user, data) -> None:
        """Users are global objects an administrator of "" may manage; super-administrators are not: else such
        an administrator could promote itself, or set a super-administrator's password and sign in as them. Nor
        are the holders of roles it could not grant itself (`access.user_takeover_refusal`), for the same reason."""
        access = request_access(self.request)
        if not access.is_superuser and ((user is not None and user.is_superuser) or data.get("is_superuser")):
            raise PermissionRefused(SUPERUSER_GUARD_MESSAGE)
        refusal = None if user is None else user_takeover_refusal(access, user, caller_id=actor_id(self.request))
        if refusal:
            raise PermissionRefused(refusal)

    def service_create(self, data):
        self._guard_superusers(None, data)
        return user_create(data=data, actor_id=actor_id(self.request))

    def service_update(self, instance, data):
        self._guard_superusers(instance, data)
        return user_update(user=instance, data=data, actor_id=actor_id(self.request))

    def service_delete(self, instance):
        self._guard_superusers(instance, {})
        user_delete(user=instance, actor_id=actor_id(self.request))

    @extend_schema(request=None, responses=UserSerializer)
    @action(detail=False, methods=["get"])
    def me(self, request):
        """The calling user."""
        return Response(UserSerializer(request.user).data)


class GroupSerializer(serializers.ModelSerializer):
    llm_ids = serializers.PrimaryKeyRelatedField(many=True, queryset=LLM.objects.all(), required=False)
    tool_ids = serializers.PrimaryKeyRelatedField(many=True, queryset=Tool.objects.all(), required=False)
    datasource_ids = serializers.PrimaryKeyRelatedField(many=True, queryset=Datasource.objects.all(), required=False)
    agent_ids = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=Plugin.objects.filter(capabilities__contains=["agent"]),
        required=False,
        help_text="Agent plugins (capability `agent`) the members may chat with",
    )

    class Meta:
        model = Group
        fields = ["id", "name", "llm_ids", "tool_ids", "datasource_ids", "agent_ids"]
        read_only_fields = ["id"]

    def to_representation(self, group):
        catalogue = Catalogue.objects.filter(group=group).first()
        return {
            "id": group.pk,
            "name": group.name,
            "llm_ids": sorted(catalogue.llms.values_list("pk", flat=True)) if catalogue else [],
            "tool_ids": sorted(catalogue.tools.values_list("pk", flat=True)) if catalogue else [],
            "datasource_ids": sorted(catalogue.datasources.values_list("pk", flat=True)) if catalogue else [],
            "agent_ids": sorted(catalogue.agents.values_list("pk", flat=True)) if catalogue else [],
        }


class GroupViewSet(ServiceViewSet):
    """Groups (teams) and the catalogue of LLMs, tools, datasources and chat agents their members may use."""

    serializer_class = GroupSerializer
    permission_classes = [IsAdmin]
    queryset = Group.objects.order_by("name")
    search_fields = ["name"]

    def service_data(self, validated):
        """A catalogue takes only what the caller may view, as an app does (`AppViewSet._check_visible`): another
        namespace's LLM granted to a group reaches its members at that namespace's edges. What the group already
        holds (a super-administrator granted it) may be sent back as the group shows it."""
        access = request_access(self.request)
        catalogue = Catalogue.objects.filter(group_id=self.kwargs.get("pk")).first() if "pk" in self.kwargs else None
        for field, relation in (
            ("llm_ids", "llms"),
            ("tool_ids", "tools"),
            ("datasource_ids", "datasources"),
            ("agent_ids", "agents"),
        ):
            chosen = validated.get(field) or []
            if not chosen:
                continue
            model = type(chosen[0])
            ids = {x.pk for x in chosen}
            visible = set(access.filter_visible(model.objects.filter(pk__in=ids)).values_list("pk", flat=True))
            if catalogue is not None:
                visible |= set(getattr(catalogue, relation).values_list("pk", flat=True))
            if ids - visible:
                raise ValidationError({field: [f"Unknown ids: {sorted(ids - visible)}."]})
        return dict(validated)

    def _save(self, group, data):
        group = group_save(name=data.get("name", group.name if group else ""), group=group)
        ids = {
            k: [x.pk for x in data[k]] if k in data else None
            for k in ("llm_ids", "tool_ids", "datasource_ids", "agent_ids")
        }
        catalogue_set(group=group, **ids)
        return group

    def service_create(self, data):
        return self._save(None, data)

    def service_update(self, instance, data):
        return self._save(instance, data)

    def service_delete(self, instance):
        group_delete(group=instance)
