"""The settings of the Celery app running the current task (set by make_celery)."""
from celery import current_app


def current_settings():
    return current_app.custos_settings
