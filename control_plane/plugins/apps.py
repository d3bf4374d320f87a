from django.apps import AppConfig


def _studio_event_sink(topic: str, payload: dict, namespace: str) -> None:
    from .runtime import publish_studio_event

    publish_studio_event(topic, payload, namespace=namespace)


class PluginsConfig(AppConfig):
    name = "control_plane.plugins"
    label = "plugins"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The studio services expose domain writes that sit above the plugin runtime: wired here, not imported there.
        from control_plane.applications.services import app_update

        from .studio_services import studio_app_update_install

        studio_app_update_install(app_update)

        # Studio LLM calls run their LLM's plugin chain, loaded in the studio host (which sits above them).
        from .runtime import chain_loader
        from .studio_chain import studio_chain_install

        studio_chain_install(chain_loader)

        from control_plane.audit.publisher import add_event_sink

        add_event_sink(_studio_event_sink)  # audit entries reach studio plugins as `audit.entry` events
