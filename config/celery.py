"""Celery configuration derived from settings (a plain dict; no Celery import here)."""
from __future__ import annotations

BEAT_SCHEDULE = {
    # name: (task, seconds); None = settings.reconcile_interval
    "reconcile-due-jobs": ("workers.tasks.reconcile", None),
    "purge-expired-nonces": ("workers.tasks.purge_expired_nonces", 300.0),
    "beat-heartbeat": ("workers.tasks.heartbeat", 30.0),
    "verify-audit-chain": ("workers.tasks.verify_audit_chain", 3600.0),
    "follow-chain": ("workers.tasks.follow_chain", "chain_watch_interval"),
    "messaging-flush-pushes": ("workers.messaging_tasks.flush_notifications", None),
    "messaging-expire": ("workers.messaging_tasks.expire", 3600.0),
    "recovery-custody-checks": ("workers.recovery_tasks.custody_checks", "custody_check_interval"),
    "recovery-backup-reminders": ("workers.recovery_tasks.backup_reminders", "backup_reminder_interval"),
    "prices-refresh": ("workers.price_tasks.refresh_prices", "price_refresh_interval"),
    "prices-backfill": ("workers.price_tasks.backfill_price_history", "price_history_interval"),
}


def _interval(settings, every) -> float:
    if every is None:
        return settings.reconcile_interval
    if isinstance(every, str):
        return getattr(settings, every)
    return every


def celery_config(settings) -> dict:
    conf = {
        "broker_url": settings.broker_url,
        "task_ignore_result": True,
        "task_acks_late": True,                 # a crashed worker's task is redelivered (Redis)
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": {name: {"task": task, "schedule": _interval(settings, every)}
                          for name, (task, every) in BEAT_SCHEDULE.items()},
    }
    if settings.embedded_broker:
        conf["broker_transport_options"] = {}
    else:
        conf["broker_transport_options"] = {"visibility_timeout": 3600}
    return conf
