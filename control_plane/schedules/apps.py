from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_system_schedules(sender, apps=None, **kwargs) -> None:
    from .services import system_schedules_ensure

    try:  # migrated only part of the way (e.g. `migrate schedules zero`): the table may not exist
        if apps is not None:
            apps.get_model("schedules", "PluginSchedule")
    except LookupError:
        return

    system_schedules_ensure()


class SchedulesConfig(AppConfig):
    name = "control_plane.schedules"
    label = "schedules"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The control plane's own periodic jobs exist as schedule rows from the first migrate on (and in test DBs).
        post_migrate.connect(_ensure_system_schedules, sender=self, dispatch_uid="schedules-system-jobs")
