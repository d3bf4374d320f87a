from django.apps import AppConfig


class HooksConfig(AppConfig):
    name = "control_plane.hooks"
    label = "hooks"
    default_auto_field = "django.db.models.BigAutoField"
