"""API of budgets (administrators only)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from control_plane.config.api import IsAdmin, ServiceViewSet

from .models import Budget, BudgetAlert, BudgetEdgeSpend
from .services import budget_create, budget_delete, budget_update


class BudgetEdgeSpendSerializer(serializers.ModelSerializer):
    class Meta:
        model = BudgetEdgeSpend
        fields = ["edge_id", "spent", "reserved", "updated_at"]
        read_only_fields = fields


class BudgetAlertSerializer(serializers.ModelSerializer):
    class Meta:
        model = BudgetAlert
        fields = ["threshold", "spent", "limit", "period_start", "emailed_to", "created_at"]
        read_only_fields = fields


class BudgetSerializer(serializers.ModelSerializer):
    """A budget with what the edges spent of it this period: in total (`spent`, `reserved`, `remaining`), per edge
    (`by_edge`, one row per edge that reported usage) and the thresholds it crossed (`alerts`, this period)."""

    target_id = serializers.IntegerField(read_only=True)
    remaining = serializers.DecimalField(max_digits=18, decimal_places=6, read_only=True)
    used_percent = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    by_edge = BudgetEdgeSpendSerializer(source="edge_spends", many=True, read_only=True)
    alerts = serializers.SerializerMethodField()

    @extend_schema_field(BudgetAlertSerializer(many=True))
    def get_alerts(self, budget: Budget) -> list[dict]:
        current = [a for a in budget.alerts.all() if a.period_start == budget.period_start]
        return list(BudgetAlertSerializer(current, many=True).data)

    class Meta:
        model = Budget
        fields = [
            "id",
            "name",
            "scope",
            "app",
            "user",
            "group",
            "llm",
            "target_id",
            "namespace",
            "limit",
            "currency",
            "period",
            "action",
            "on_unreachable",
            "anchor",
            "period_start",
            "period_end",
            "spent",
            "reserved",
            "remaining",
            "used_percent",
            "by_edge",
            "alert_thresholds",
            "notify_email",
            "alerts",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "namespace",
            "period_start",
            "period_end",
            "spent",
            "reserved",
            "created_at",
            "updated_at",
        ]


class BudgetViewSet(ServiceViewSet):
    serializer_class = BudgetSerializer
    permission_classes = [IsAdmin]
    queryset = Budget.objects.prefetch_related("edge_spends", "alerts").order_by("id")
    filterset_fields = ["scope", "namespace", "app", "user", "group", "llm", "period", "action", "is_active"]
    search_fields = ["name"]
    ordering_fields = ["id", "limit", "spent", "period_end"]

    def service_create(self, data):
        return budget_create(data=data)

    def service_update(self, instance, data):
        return budget_update(budget=instance, data=data)

    def service_delete(self, instance):
        budget_delete(budget=instance)
