from rest_framework import serializers

from control_plane.sync.namespaces import validate_namespace

from .models import EdgeInstance


class EdgeInstanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = EdgeInstance
        fields = [
            "id",
            "edge_id",
            "namespace",
            "status",
            "version_applied",
            "checksum_applied",
            "config_source",
            "nats_connected",
            "build",
            "host",
            "port",
            "uptime_s",
            "in_flight",
            "spool_records",
            "spool_bytes",
            "started_at",
            "workers",
            "worker_beats",
            "plugins_not_loaded",
            "plugins_not_loaded_total",
            "first_seen",
            "last_heartbeat",
        ]
        read_only_fields = fields


class NamespaceReloadSerializer(serializers.Serializer):
    namespace = serializers.CharField(allow_blank=True, max_length=63, validators=[validate_namespace])
