from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "control_plane.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every app's admin module is loaded by now (django.contrib.admin comes first in INSTALLED_APPS).
        from .admin_access import install

        install()
