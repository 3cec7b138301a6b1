"""Liveness and readiness."""
from __future__ import annotations

from flask_smorest import Blueprint

import threading
import time

from flask import current_app

from app.deps import deps
from app.errors import RateLimited
from app.extensions import db
from app.ratelimit import client_ip, hit
from app.schemas import HealthSchema, ReadySchema

READY_CACHE_SECONDS = 5.0          # a healthy answer is reused this long …
READY_RETRY_SECONDS = 1.0          # … an unhealthy one only this long (recovery shows soon)
_ready_lock = threading.Lock()

bp = Blueprint("health", __name__, url_prefix="/v1", description="Process health")


@bp.route("/health", methods=["GET"])
@bp.response(200, HealthSchema)
def health():
    """The process is up. Touches nothing else."""
    return {"status": "ok"}


@bp.route("/ready", methods=["GET"])
@bp.response(200, ReadySchema)
@bp.alt_response(503, schema=ReadySchema, description="A dependency is unreachable")
def ready():
    """Whether the database, the task broker and bitcoind answer; each reported.
    503 when any of them does not. Unauthenticated (load balancers call it), so it is
    rate-limited per address (`RATELIMIT_READY`) and the probes run at most once per
    READY_CACHE_SECONDS per process, whoever asks."""
    d = deps()
    retry = hit(d.limiter, d.settings.ratelimit_ready, "ready", client_ip())
    if retry is not None:
        raise RateLimited("too many readiness checks from this address", headers={"Retry-After": str(retry)},
                          details={"retry_after": retry})
    checks = _cached_checks(d)
    ok = all(c["ok"] for c in checks.values())
    return {"status": "ready" if ok else "unavailable", "checks": checks}, (200 if ok else 503)


def _cached_checks(d) -> dict:
    """The last probe results if younger than READY_CACHE_SECONDS, else fresh ones (one
    caller probes; concurrent callers wait for it and share the answer)."""
    from app.readiness import check_all
    ext = current_app.extensions
    with _ready_lock:
        cached = ext.get("custos_ready")
        ttl = READY_CACHE_SECONDS if cached and all(c["ok"] for c in cached[1].values()) else READY_RETRY_SECONDS
        if cached is None or time.monotonic() - cached[0] >= ttl:
            cached = (time.monotonic(), check_all(d, db.engine))
            ext["custos_ready"] = cached
        return cached[1]
