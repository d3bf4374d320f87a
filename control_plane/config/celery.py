"""The Celery application: schedules and the control plane's periodic jobs run on it, with Redis as the broker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.config.settings")

app = Celery("fjordgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
