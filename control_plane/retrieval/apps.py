from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    name = "control_plane.retrieval"
    label = "retrieval"
    verbose_name = "Datasource documents"
