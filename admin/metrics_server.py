"""`python -m admin.metrics_server`: a standalone /metrics listener on METRICS_BIND:METRICS_PORT
(default 127.0.0.1:9108). With PROMETHEUS_MULTIPROC_DIR it aggregates every gunicorn and
Celery process on the host that shares that directory."""
from __future__ import annotations

import logging


def main() -> None:
    from werkzeug.serving import make_server

    from admin.metrics import metrics_app
    from config.logging import configure_logging
    from config.settings import Settings
    settings = Settings.from_env().validate()
    configure_logging(settings)
    port = settings.metrics_port or 9108
    server = make_server(settings.metrics_bind, port, metrics_app(settings), threaded=True)
    logging.getLogger("custos.metrics").info("metrics on http://%s:%s/metrics", settings.metrics_bind, port)
    server.serve_forever()


if __name__ == "__main__":
    main()
