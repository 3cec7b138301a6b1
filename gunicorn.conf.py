"""gunicorn's configuration, read automatically when gunicorn starts in this directory
(`gunicorn wsgi:app`): sync workers, as many as config.settings.gunicorn_workers says
(WEB_CONCURRENCY, else 2 per core). Command-line flags still win (`--workers 8`).
Why sync and 2 per core: docs/OPERATIONS.md, "Choosing the API server"."""
from config.settings import Settings, gunicorn_workers

worker_class = "sync"
workers = gunicorn_workers(Settings.from_env())

