"""Fixtures for the fuzz tests: a populated app (tests.fuzz.world) on the test chain with
generous rate limits (the fuzzer should reach the handlers; 429s still pass), loaded as a
schemathesis schema through the signing middleware once per identity. Path parameters
are drawn from what the generator makes and the caller's real ids."""
from __future__ import annotations

import collections
import os

import pytest
import schemathesis
from hypothesis import strategies as st
from sqlalchemy import update

from devices.model import Device
from store.session import session_scope
from tests.fuzz import world
from tests.fuzz.signing import SigningMiddleware


def _pytest_nodeid_shim() -> None:
    """schemathesis 4.32.5's pytest integration reads and writes `Node._nodeid`, which
    pytest 9.2 renamed (`_id`). A property keeps its per-operation report names working;
    remove once schemathesis follows pytest."""
    from _pytest.nodes import Node
    if hasattr(Node, "_nodeid"):
        return

    def get(self):
        return self.__dict__.get("_schemathesis_nodeid", self.nodeid)

    def put(self, value):
        self.__dict__["_schemathesis_nodeid"] = value
    Node._nodeid = property(get, put)


_pytest_nodeid_shim()
# Per operation and identity; `make fuzz` raises it (FUZZ_MAX_EXAMPLES).
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "6"))


@pytest.fixture
def fuzz_settings(chain_settings):
    return chain_settings.replace(**{
        "staff_api_keys": ((world.STAFF_ID, world.STAFF_KEY),),
        "ratelimit_ip": "100000/minute", "ratelimit_device": "100000/minute", "ratelimit_register": "100000/minute",
        "ratelimit_recovery_email": "100000/hour", "ratelimit_recovery_ip": "100000/hour",
        "ratelimit_invite_create": "100000/hour", "ratelimit_invite_accept": "100000/hour",
        "ratelimit_prekey_fetch": "100000/hour", "ratelimit_prekey_target": "100000/hour",
        "message_rate_burst": 100000})


@pytest.fixture
def fuzz_world(app_factory, fuzz_settings, chain_node, mine):
    app = app_factory(fuzz_settings)
    return app, world.build(app, fuzz_settings, chain_node, mine)


def _schema(app, ids, middleware):
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", middleware)

    @schema.hook("flatmap_path_parameters")
    def real_ids(_context, path_parameters):
        """Each path parameter: what the generator made, or one of the caller's real ids."""
        if not path_parameters:
            return st.just(path_parameters)
        return st.fixed_dictionaries({
            name: st.sampled_from([value, *ids[name]]) if name in ids else st.just(value)
            for name, value in path_parameters.items()})
    schema.config.generation.update(max_examples=MAX_EXAMPLES)
    return schema


@pytest.fixture
def anonymous_schema(fuzz_world):
    app, w = fuzz_world
    return _schema(app, w["ids"], SigningMiddleware(app))


@pytest.fixture
def device_schema(fuzz_world, fuzz_settings):
    app, w = fuzz_world
    owner = w["owner"]

    def heal(_environ):
        with session_scope(fuzz_settings.database_url) as s:
            s.execute(update(Device).where(Device.id == owner.device_id).values(revoked_at=None))
    return _schema(app, w["ids"], SigningMiddleware(app, client=owner, heal=heal))


@pytest.fixture
def staff_schema(fuzz_world):
    app, w = fuzz_world
    return _schema(app, w["ids"], SigningMiddleware(app, bearer=world.STAFF_KEY))


def pytest_terminal_summary(terminalreporter):
    from tests.fuzz.test_fuzz_api import STATS
    if not STATS:
        return
    for who in sorted({identity for identity, *_ in STATS}):
        by_status = collections.Counter()
        for (identity, _m, _p, status), n in STATS.items():
            by_status[status] += n if identity == who else 0
        terminalreporter.write_line(f"fuzz {who}: {sum(by_status.values())} requests; by status: "
                                    + ", ".join(f"{k}={v}" for k, v in sorted(by_status.items()) if v))
    from tests.fuzz.test_fuzz_api import TIMES
    if os.environ.get("FUZZ_VERBOSE"):
        for key, t in TIMES.most_common(12):
            terminalreporter.write_line(f"  {t:7.2f}s {key}")
        for key, n in sorted(STATS.items()):
            terminalreporter.write_line(f"  {key} {n}")
