"""Celery app, thin tasks, beat schedule.

Tasks are triggers, the database is the truth: a task takes ids, calls one service, is
safe to run twice and retries only transient errors. `workers.jobs` holds durable
scheduled work; the `reconcile` beat task re-enqueues whatever is due, so a lost broker
message (the embedded SQL broker delivers at most once) delays work but never loses it.
"""
