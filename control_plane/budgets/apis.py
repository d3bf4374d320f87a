"""API of budgets (administrators only)."""

from __future__ import annotations

from rest_framework import serializers

from control_plane.config.api import IsAdmin, ServiceViewSet

from .models import Budget
from .services import budget_create, budget_delete, budget_update


class BudgetSerializer(serializers.ModelSerializer):
    target_id = serializers.IntegerField(read_only=True)

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
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "namespace", "period_start", "period_end", "spent", "created_at", "updated_at"]


class BudgetViewSet(ServiceViewSet):
    serializer_class = BudgetSerializer
    permission_classes = [IsAdmin]
    queryset = Budget.objects.order_by("id")
    filterset_fields = ["scope", "namespace", "app", "user", "group", "llm", "period", "action", "is_active"]
    search_fields = ["name"]
    ordering_fields = ["id", "limit", "spent", "period_end"]

    def service_create(self, data):
        return budget_create(data=data)

    def service_update(self, instance, data):
        return budget_update(budget=instance, data=data)

    def service_delete(self, instance):
        budget_delete(budget=instance)
