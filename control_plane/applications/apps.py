from django.apps import AppConfig


class ApplicationsConfig(AppConfig):
    name = "control_plane.applications"
    label = "applications"
    default_auto_field = "django.db.models.BigAutoField"
