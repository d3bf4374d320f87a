from django.apps import AppConfig


class EdgesConfig(AppConfig):
    name = "control_plane.edges"
    label = "edges"
    default_auto_field = "django.db.models.BigAutoField"
