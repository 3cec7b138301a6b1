"""The flask-smorest Api: OpenAPI 3 at /v1/openapi.json, Swagger UI at /v1/docs, and
the blueprint list."""
from __future__ import annotations

from flask_smorest import Api

from app.errors import http_exception_response
from app.schemas import ErrorSchema


class CustosApi(Api):
    """flask-smorest's Api with our error envelope for HTTP errors (keeps `Allow` on 405
    and `Retry-After` on 429, which the stock handler drops) and in the document: every
    error response (`default`, 422 and the per-status ones) is `ErrorSchema`, the
    envelope the server really sends."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        return http_exception_response(error)


def make_api(app) -> CustosApi:
    app.config.update(
        API_TITLE="Custos",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/v1/docs/static/",
    )
    api = CustosApi(app, spec_kwargs={
        "info": {"description": "Multisig self-custody cosigning server. Device calls are signed "
                                "with RFC 9421 HTTP Message Signatures."},
    })
    api.spec.components.security_scheme("HttpSignature", {
        "type": "apiKey", "in": "header", "name": "Signature",
        "description": "RFC 9421 signature over @method, @path, @query, content-digest with "
                       "created, nonce and keyid=<device id> (Signature-Input header).",
    })
    _serve_swagger_assets(app)
    api.spec.components.security_scheme("StaffBearer", {
        "type": "http", "scheme": "bearer",
        "description": "Operator staff API token (`cst_…`, scoped; created in the admin console or with "
                       "`flask staff token create`). Freezing, unfreezing and releasing a share also need "
                       "the member's current TOTP code in `X-Staff-TOTP`. Development only: STAFF_API_KEYS."})
    from app.health import bp as health_bp
    from app.devices_api import bp as devices_bp
    api.register_blueprint(health_bp)
    api.register_blueprint(devices_bp)
    from app.accounts_api import bp as accounts_bp
    from app.spends_api import bp as spends_bp
    api.register_blueprint(accounts_bp)
    api.register_blueprint(spends_bp)
    from app.policy_api import bp as policy_bp
    api.register_blueprint(policy_bp)
    from app.verification_api import bp as verification_bp
    api.register_blueprint(verification_bp)
    from app.admin_api import bp as admin_bp
    api.register_blueprint(admin_bp)
    from app.keys_api import bp as keys_bp
    from app.messaging_api import bp as messages_bp
    from app.contacts_api import bp as contacts_bp
    api.register_blueprint(keys_bp)
    api.register_blueprint(messages_bp)
    api.register_blueprint(contacts_bp)
    from app.recovery_api import bp as recovery_bp
    from app.backups_api import bp as backups_bp
    from app.recovery_admin_api import bp as recovery_admin_bp
    api.register_blueprint(recovery_bp)
    api.register_blueprint(backups_bp)
    api.register_blueprint(recovery_admin_bp)
    from app.inheritance_api import admin_bp as inheritance_admin_bp, bp as inheritance_bp
    api.register_blueprint(inheritance_bp)
    api.register_blueprint(inheritance_admin_bp)
    from app.prices_api import bp as prices_bp
    api.register_blueprint(prices_bp)
    return api


def _serve_swagger_assets(app) -> None:
    """Swagger UI's JS/CSS come from the swagger-ui-bundle package, served locally: the
    docs page loads nothing from a CDN."""
    from flask import send_from_directory
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/v1/docs/static/<path:filename>")
    def swagger_static(filename):
        return send_from_directory(str(swagger_ui_path), filename, max_age=3600)
