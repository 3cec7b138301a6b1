"""Flask app factory, blueprints (one per resource), device auth, error envelope, OpenAPI.

`create_app(settings)` builds a fully independent app: its own adapters (Redis, nonce
store, rate limiter, bitcoind client) from the given settings, so tests can run several
apps side by side.
"""
from __future__ import annotations

import logging
import os
import time
import types

from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.orm import sessionmaker

from config.settings import Settings

log = logging.getLogger("custos.app")


def create_app(settings: Settings | None = None) -> Flask:
    """Build the WSGI app. Raises SettingsError for a production config with default or
    missing secrets."""
    from app import models  # noqa: F401  (registers tables)
    from app.api import make_api
    from app.errors import register_error_handlers
    from app.extensions import db, migrate
    from app.deps import Deps
    from app.ratelimit import make_limiter
    from config import bootstrap
    from config.logging import configure_logging, request_id_var
    from store.session import engine_options, install_engine_hooks

    settings = (settings or Settings.from_env()).validate()
    configure_logging(settings)
    if settings.database_url.startswith("sqlite"):
        from config.settings import VAR_DIR
        VAR_DIR.mkdir(exist_ok=True)

    app = CustosFlask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=settings.max_content_length,
        JSON_SORT_KEYS=False,
    )
    app.session_interface = LazyCookieSessions()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True)
    with app.app_context():
        install_engine_hooks(db.engine)
        session_factory = sessionmaker(bind=db.engine, expire_on_commit=False)

    redis = bootstrap.redis_client(settings)
    limiter = make_limiter(app, settings, redis)
    app.extensions["custos"] = Deps(
        settings=settings, redis=redis,
        nonces=bootstrap.nonce_store(settings, session_factory, redis),
        limiter=limiter, bitcoind=bootstrap.bitcoind(settings))

    register_error_handlers(app)
    make_api(app)
    from admin import metrics
    from app.console import register_console
    register_console(app)             # /admin: the staff console (HTML forms, cookie sessions)
    from app.verify_page import register_verify_page
    register_verify_page(app)         # /verify: the e-mailed out-of-band confirmation page
    metrics.install(app)              # request latency histograms
    metrics.serve_in_thread(settings)  # /metrics on METRICS_BIND:METRICS_PORT, never on the API port
    if settings.cors_origins:
        _enable_cors(app, settings.cors_origins)

    @app.before_request
    def _start():
        req, ctx = request._get_current_object(), g._get_current_object()  # one proxy lookup each
        rid = req.environ.get("HTTP_X_REQUEST_ID", "")   # req.headers.get("X-Request-Id", "")
        if not (0 < len(rid) <= 64 and rid.replace("-", "").replace("_", "").isalnum()):
            rid = os.urandom(16).hex()      # 32 hex digits, as uuid4().hex gave
        ctx.request_id = rid
        ctx.request_id_token = request_id_var.set(rid)
        ctx.started = time.perf_counter()
        if req.method in ("POST", "PUT", "PATCH") and req.content_length and \
                req.mimetype != "application/json" and not req.path.startswith(("/admin", "/verify")):
            from werkzeug.exceptions import UnsupportedMediaType
            raise UnsupportedMediaType("request bodies must be application/json")

    @app.after_request
    def _finish(response):
        ctx = g._get_current_object()
        headers = response.headers
        # Headers.setdefault / `in` raise and catch a BadRequestKeyError for every absent
        # name: one pass over the few names present instead, then plain appends
        present = {name.lower() for name, _ in headers}
        rid = ctx.get("request_id", "")
        if "x-request-id" in present:
            headers["X-Request-Id"] = rid
        else:
            headers.add("X-Request-Id", rid)
        if "cache-control" not in present:
            headers.add("Cache-Control", "no-store")
        if "x-content-type-options" not in present:
            headers.add("X-Content-Type-Options", "nosniff")
        if "started" in ctx and log.isEnabledFor(logging.INFO):
            req = request._get_current_object()
            log.info("%s %s %s %.1fms device=%s", req.method, req.path, response.status_code,
                     (time.perf_counter() - ctx.started) * 1000, ctx.get("device_id") or "-")
        return response

    @app.teardown_request
    def _reset(_exc):
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)

    from app import input_guard
    input_guard.install(app)          # after _start: body shape, lone surrogates, control characters

    from app.cli import register_cli
    register_cli(app)
    log.info("custos api ready env=%s network=%s secp256k1=%s nonces=%s", settings.env, settings.network,
             bootstrap.secp256k1_backend(), "redis" if redis else "database")
    return app


_CO_COROUTINE = 0x80      # inspect.CO_COROUTINE


class CustosFlask(Flask):
    """Flask with a cheaper `ensure_sync`: Flask calls it for every hook and the view of
    every request (about 9 times), and `inspect.iscoroutinefunction` walks partials and
    methods in Python each time. A plain function that is neither `async def` nor marked
    with inspect.markcoroutinefunction (3.12+) is returned as is (what inspect concludes
    for it); anything else goes to Flask's own check."""

    def ensure_sync(self, func):
        if type(func) is types.FunctionType and not func.__code__.co_flags & _CO_COROUTINE \
                and getattr(func, "_is_coroutine_marker", None) is None:
            return func
        return super().ensure_sync(func)


class LazyCookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session, built only for a request that carries its cookie:
    the API never does (the console has its own sessions), so no request pays for the
    signing serializer Flask would otherwise build every time."""

    def open_session(self, app, request):
        # no Cookie header at all: nothing to parse (request.cookies walks every header)
        if app.secret_key and ("HTTP_COOKIE" not in request.environ
                               or not request.cookies.get(self.get_cookie_name(app))):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        # an empty session nobody read or changed: Flask's method would only look up the
        # seven cookie settings and return
        if not session and not session.modified and not session.accessed:
            return
        super().save_session(app, session, response)


def _migrations_dir():
    from pathlib import Path
    return Path(__file__).resolve().parent.parent / "migrations"


def _enable_cors(app: Flask, origins) -> None:
    @app.after_request
    def _cors(response):
        origin = request.headers.get("Origin")
        if origin and origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Headers"] = \
                "Content-Type, Content-Digest, Signature, Signature-Input, Idempotency-Key, X-Request-Id"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE"
        return response
