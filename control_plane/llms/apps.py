from django.apps import AppConfig


class LlmsConfig(AppConfig):
    name = "control_plane.llms"
    label = "llms"
    default_auto_field = "django.db.models.BigAutoField"
