from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "control_plane.budgets"
    label = "budgets"
    default_auto_field = "django.db.models.BigAutoField"
