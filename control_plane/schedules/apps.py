from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "control_plane.schedules"
    label = "schedules"
    default_auto_field = "django.db.models.BigAutoField"
