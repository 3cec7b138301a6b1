"""Fuzzing the whole OpenAPI document with schemathesis: unsigned, signed as a registered
device (every generated request signed with RFC 9421 at the WSGI boundary), and with a
staff token; path parameters are either generated or real ids of the caller's own
resources. Fails on any 5xx and on any 4xx without the error envelope."""
from __future__ import annotations

import collections
import json
import time

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

STATS = collections.Counter()      # (identity, method, path, status) → responses, printed at the end of the run
TIMES = collections.Counter()      # (method, path) → seconds in the app (FUZZ_VERBOSE=1 prints the slowest)
# Unsigned: the whole document. Signed as the device: everything but the admin API (which
# answers a device 401, as it answers the unsigned run). Staff bearer: the admin API.
unsigned = schemathesis.pytest.from_fixture("anonymous_schema")
as_device = schemathesis.pytest.from_fixture("device_schema").exclude(path_regex=r"^/v1/admin")
as_staff = schemathesis.pytest.from_fixture("staff_schema").include(path_regex=r"^/v1/admin")
FUZZ_SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _envelope_problem(response) -> str | None:
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return "the error body is not JSON"
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or set(err) != {"code", "message", "details"}:
        return f"not the error envelope: {body!r:.200}"
    if not isinstance(err["code"], str) or not isinstance(err["message"], str) or not isinstance(err["details"], dict):
        return f"envelope fields have the wrong types: {err!r:.200}"
    return None


# The document is honest (issue #15): every response, success or error, must match it.
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]


def check(case, identity: str):
    """Send the case; no 5xx ever, every 4xx in the error envelope, and every response
    conforming to the document (status, content type, body schema)."""
    t = time.perf_counter()
    response = case.call()
    TIMES[(case.method, case.path)] += time.perf_counter() - t
    STATS[(identity, case.method, case.path, response.status_code)] += 1
    assert response.status_code < 500, f"{case.method} {case.formatted_path} → {response.status_code}: " \
                                       f"{response.content[:300]!r}"
    if response.status_code >= 400:
        problem = _envelope_problem(response)
        assert problem is None, f"{case.method} {case.formatted_path} → {response.status_code}: {problem}"
    case.validate_response(response, checks=CONFORMANCE)


@unsigned.parametrize()
@FUZZ_SETTINGS
def test_fuzz_unsigned(case):
    check(case, "unsigned")


@as_device.parametrize()
@FUZZ_SETTINGS
def test_fuzz_signed_as_a_device(case):
    check(case, "device")


@as_staff.parametrize()
@FUZZ_SETTINGS
def test_fuzz_with_a_staff_token(case):
    check(case, "staff")


def test_the_signed_runs_reached_the_handlers():
    """A broken signer would make the signed runs a second unsigned run: each identity
    that ran must have had real successes (not only 401s)."""
    ok = collections.Counter()
    for (identity, _method, _path, status), n in STATS.items():
        ok[identity] += n if 200 <= status < 300 else 0
    ran = {identity for identity, *_ in STATS}
    assert ran, "run the fuzz tests with this one"
    for identity, least in (("device", 100), ("staff", 20)):
        if identity in ran:
            assert ok[identity] >= least, (identity, ok[identity])
