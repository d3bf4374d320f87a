from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "control_plane.portal"
    label = "portal"
    verbose_name = "Portal"
