"""/api/v1/auth/token/ (get a new token, shown once) and /api/v1/auth/tokens/ (list and revoke your own)."""

from __future__ import annotations

from django.contrib.auth import authenticate, user_logged_in
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from control_plane.config.api import request_access
from control_plane.config.exceptions import PermissionRefused
from control_plane.sync.namespaces import validate_namespace

from .models import ApiToken
from .tokens import api_token_create, api_token_revoke

NAMESPACE = serializers.CharField(max_length=63, allow_blank=True, validators=[validate_namespace])


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "namespaces",
            "read_only",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields


class NewApiTokenSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="The token; shown in this response only.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
        read_only_fields = fields


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, required=False)
    password = serializers.CharField(max_length=128, required=False, style={"input_type": "password"})
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    namespaces = serializers.ListField(child=NAMESPACE, max_length=100, required=False, default=list)
    read_only = serializers.BooleanField(required=False, default=False)  # type: ignore[assignment]  # a field, not Field.read_only
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ObtainTokenView(APIView):
    """A new token for the user named by username + password, or for the signed-in session's user.

    A token cannot mint tokens (that would escape its own narrowing), so only those two ways are accepted.
    """

    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request) -> str:
        return "Token"  # a wrong password is a 401 (what the rest of the API answers), not a 403

    @extend_schema(request=TokenRequestSerializer, responses={201: NewApiTokenSerializer})
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        username, password = values.pop("username", None), values.pop("password", None)
        if username is not None or password is not None:
            user = authenticate(request._request, username=username or "", password=password or "")
            if user is None:
                raise AuthenticationFailed("Wrong username or password.")
            # A sign-in as the pages' are (no session, though): its last_login, and the end of its failed
            # sign-ins' count (`accounts/lockout.py`), which a guesser's failures would otherwise lock out.
            user_logged_in.send(sender=type(user), request=request._request, user=user)
        elif request.user and request.user.is_authenticated:
            user = request.user
        else:
            raise AuthenticationFailed("Give username and password, or sign in first.")
        token, key = api_token_create(owner=user, **values)
        token.key = key
        return Response(NewApiTokenSerializer(token).data, status=status.HTTP_201_CREATED)


class ApiTokenViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Your own tokens. DELETE revokes (the row stays, so `last_used_at` still tells when it was used)."""

    serializer_class = ApiTokenSerializer
    permission_classes = [IsAuthenticated]
    self_service = True  # everyone manages their own tokens

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return ApiToken.objects.none()
        return ApiToken.objects.filter(owner=self.request.user).order_by("-created_at", "-id")

    def perform_destroy(self, instance):
        if request_access(self.request).read_only:
            raise PermissionRefused("This API token is read-only.")
        api_token_revoke(token=instance)
