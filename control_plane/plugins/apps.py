from django.apps import AppConfig


class PluginsConfig(AppConfig):
    name = "control_plane.plugins"
    label = "plugins"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The studio services expose domain writes that sit above the plugin runtime: wired here, not imported there.
        from control_plane.applications.services import app_update

        from .studio_services import studio_app_update_install

        studio_app_update_install(app_update)
