"""REST API under /api/v1/schedules/: schedules (CRUD, run now, history) and runs (filterable history)."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from control_plane.accounts.access import namespace_of, namespace_of_data
from control_plane.config.api import IsAdmin, NamespaceFilterBackend, check_change

from . import selectors, services
from .models import PluginSchedule, ScheduleRun
from .serializers import PluginScheduleSerializer, ScheduleRunSerializer


def _drf_error(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


class ScheduleRunFilter(django_filters.FilterSet):
    scheduled_after = django_filters.IsoDateTimeFilter(field_name="scheduled_for", lookup_expr="gte")
    scheduled_before = django_filters.IsoDateTimeFilter(field_name="scheduled_for", lookup_expr="lt")
    plugin = django_filters.CharFilter(field_name="schedule__plugin__slug")

    class Meta:
        model = ScheduleRun
        fields = ("schedule", "status", "trigger", "plugin")


class PluginScheduleViewSet(viewsets.ModelViewSet):
    """Schedules of plugins and of the control plane's own jobs; staff only."""

    serializer_class = PluginScheduleSerializer
    permission_classes = (IsAdmin,)
    lookup_value_regex = r"\d+"
    filterset_fields = ("enabled", "overlap_policy", "system_job", "plugin__slug")
    search_fields = ("schedule_id", "name", "plugin__slug")
    ordering_fields = ("next_run_at", "last_run_at", "schedule_id")

    def get_queryset(self):
        return selectors.schedule_list()

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        check_change(self.request, PluginSchedule, namespace_of_data(PluginSchedule, data))
        try:
            serializer.instance = services.schedule_create(
                plugin=data.pop("plugin"), schedule_id=data.pop("schedule_id"), cron=data.pop("cron"), **data
            )
        except DjangoValidationError as exc:
            raise _drf_error(exc) from None

    def perform_update(self, serializer):
        instance = serializer.instance
        new_namespace = namespace_of_data(PluginSchedule, serializer.validated_data, instance)
        check_change(self.request, PluginSchedule, namespace_of(instance), new_namespace)
        try:
            serializer.instance = services.schedule_update(schedule=serializer.instance, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise _drf_error(exc) from None

    def perform_destroy(self, instance):
        check_change(self.request, PluginSchedule, namespace_of(instance))
        try:
            services.schedule_delete(schedule=instance)
        except DjangoValidationError as exc:
            raise _drf_error(exc) from None

    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Queue a run now (outside the cron rhythm); 202 with the pending run."""
        schedule = self.get_object()
        check_change(request, PluginSchedule, namespace_of(schedule))
        try:
            run = services.schedule_run_now(schedule=schedule, triggered_by=request.user.get_username())
        except DjangoValidationError as exc:
            raise _drf_error(exc) from None
        return Response(ScheduleRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    # `GET /schedules/{id}/runs/` would get the same operationId as `GET /schedules/runs/{id}/` (both
    # "schedules_runs_retrieve"); it is a paginated list, so name and describe it as one. It filters nothing
    # itself (use /schedules/runs/?schedule= for filters), hence only the namespace filter here.
    @extend_schema(operation_id="schedules_history_list", responses=ScheduleRunSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[NamespaceFilterBackend])
    def runs(self, request, pk=None):
        """This schedule's run history, newest first."""
        queryset = selectors.schedule_run_list().filter(schedule=self.get_object())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ScheduleRunSerializer(page, many=True).data)


class ScheduleRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Run history of every schedule, filterable by schedule, plugin, status, trigger and fire time."""

    serializer_class = ScheduleRunSerializer
    permission_classes = (IsAdmin,)
    filterset_class = ScheduleRunFilter
    ordering_fields = ("scheduled_for", "started_at", "duration_ms")

    def get_queryset(self):
        return selectors.schedule_run_list()
