from django.apps import AppConfig


class KvConfig(AppConfig):
    name = "control_plane.kv"
    label = "kv"
    default_auto_field = "django.db.models.BigAutoField"
