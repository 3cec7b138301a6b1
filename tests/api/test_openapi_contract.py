"""The OpenAPI document tells the truth (issue #15): it validates as OpenAPI 3, every
error response of every operation is the real envelope, and every 2xx response with a
body has a schema (the views serialise through it). Real responses are compared with it
by the fuzz tests (tests/fuzz, schemathesis conformance checks)."""
from __future__ import annotations

import pytest


@pytest.fixture
def spec(app):
    return app.test_client().get("/v1/openapi.json").get_json()


def _resolve(spec, node):
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = spec["components"][kind][name]
    return node


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method != "parameters":
                yield f"{method.upper()} {path}", op


def test_the_document_is_valid_openapi(spec):
    from openapi_spec_validator import validate
    validate(spec)


def test_every_error_response_is_the_envelope(spec):
    envelope = spec["components"]["schemas"]["Error"]
    assert envelope["required"] == ["error"]
    body = _resolve(spec, envelope["properties"]["error"])
    assert set(body["properties"]) == {"code", "message", "details"} and set(body["required"]) == set(body["properties"])
    wrong = []
    for name, op in _operations(spec):
        for status, response in op["responses"].items():
            if name == "GET /v1/ready" and status == "503":
                continue             # readiness answers its report (ReadySchema), not an error
            if status == "default" or status[0] in "45":
                schema = _resolve(spec, response).get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref") != "#/components/schemas/Error":
                    wrong.append(f"{name} {status}")
    assert wrong == []


def test_every_2xx_response_with_a_body_has_a_schema(spec):
    missing = [f"{name} {status}" for name, op in _operations(spec) for status, response in op["responses"].items()
               if status.startswith("2") and status != "204"
               and "schema" not in _resolve(spec, response).get("content", {}).get("application/json", {})]
    assert missing == []


def test_guarded_operations_document_their_codes(spec):
    """Every signed operation lists the signature codes under 401; staff operations their
    401/403; and the operations with their own refusals name those codes."""
    for name, op in _operations(spec):
        security = {next(iter(s)) for s in op.get("security", [])}
        if "HttpSignature" in security:
            assert "nonce_reused" in op["responses"]["401"]["description"], name
        if "StaffBearer" in security:
            assert "forbidden" in op["responses"]["403"]["description"], name
    otp = spec["paths"]["/v1/recoveries/{case_id}/otp"]["post"]["responses"]
    assert "otp_budget_exhausted" in otp["429"]["description"] and "otp_invalid" in otp["422"]["description"]
