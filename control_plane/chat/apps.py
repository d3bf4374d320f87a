from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "control_plane.chat"
    label = "chat"
    verbose_name = "Chat"
