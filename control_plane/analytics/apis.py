"""/api/v1/analytics/: shipped records (read-only) and usage/spend time series for dashboards."""

import datetime as dt

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from control_plane.config.api import IsAdmin, request_access

from .models import AnalyticsEvent
from .selectors import usage_series


class AnalyticsEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AnalyticsEvent
        exclude = ["id"]


class AnalyticsEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = AnalyticsEvent.objects.all()
    serializer_class = AnalyticsEventSerializer
    permission_classes = [IsAdmin]
    lookup_field = "record_id"
    filterset_fields = ["app_id", "llm_id", "user_id", "namespace", "edge_id", "status_code", "model", "request_id"]
    ordering_fields = ["timestamp", "cost", "latency_ms"]


class UsageQuerySerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=["app_id", "llm_slug"], default="app_id")
    bucket = serializers.ChoiceField(choices=["hour", "day"], default="day")
    days = serializers.IntegerField(min_value=1, max_value=366, default=30)


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class _UsageKeyField(serializers.Field):
    """An app's id (an integer) or an LLM's slug (a string), after `group_by`."""


class UsageRowSerializer(serializers.Serializer):
    """One bucket of one app or LLM (documents the response; rows are built from the aggregate query)."""

    bucket = serializers.DateTimeField()
    key = _UsageKeyField(help_text="The app id (integer) or the LLM slug (string), after `group_by`.")
    requests = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost = serializers.CharField(help_text="Spend in USD as a decimal string, at the stored precision.")


class UsageView(APIView):
    """Requests, tokens and spend per app or per LLM per hour/day."""

    permission_classes = [IsAdmin]

    @extend_schema(parameters=[UsageQuerySerializer], responses=UsageRowSerializer(many=True))
    def get(self, request):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        since = timezone.now() - dt.timedelta(days=query.validated_data["days"])
        rows = usage_series(
            group_by=query.validated_data["group_by"],
            since=since,
            bucket=query.validated_data["bucket"],
            namespaces=request_access(request).viewable("analytics.analyticsevent"),
        )
        return Response(
            [
                {
                    "bucket": row["bucket"].isoformat(),
                    "key": row[query.validated_data["group_by"]],
                    "requests": row["requests"],
                    "tokens": row["tokens"] or 0,
                    "cost": str(row["cost"] or 0),
                }
                for row in rows
            ]
        )
