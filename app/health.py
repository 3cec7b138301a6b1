"""Liveness and readiness."""
from __future__ import annotations

from flask_smorest import Blueprint

from app.deps import deps
from app.extensions import db
from app.schemas import HealthSchema, ReadySchema

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
    503 when any of them does not."""
    from app.readiness import check_all
    checks = check_all(deps(), db.engine)
    ok = all(c["ok"] for c in checks.values())
    return {"status": "ready" if ok else "unavailable", "checks": checks}, (200 if ok else 503)
