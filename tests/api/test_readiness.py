"""/v1/ready (issue #14, L9): unauthenticated, so its probes (database, broker, bitcoind)
run at most once per READY_CACHE_SECONDS per process, and callers are rate-limited per
address."""
from __future__ import annotations

from app import readiness


def test_many_callers_share_one_probe_round(app, monkeypatch):
    rounds, real = [], readiness.check_all
    monkeypatch.setattr(readiness, "check_all", lambda *a: rounds.append(1) or real(*a))   # counts, still probes
    c = app.test_client()
    answers = [c.get("/v1/ready", environ_base={"REMOTE_ADDR": f"10.7.0.{i}"}) for i in range(20)]
    assert {r.status_code for r in answers} == {503}             # bitcoind is down in these tests
    assert len(rounds) == 1
    assert answers[-1].get_json()["checks"]["bitcoind"]["ok"] is False


def test_ready_is_rate_limited_per_address(settings_factory, app_factory):
    c = app_factory(settings_factory(RATELIMIT_READY="3/minute")).test_client()
    codes = [c.get("/v1/ready", environ_base={"REMOTE_ADDR": "10.7.1.1"}).status_code for _ in range(4)]
    assert codes == [503, 503, 503, 429]
    limited = c.get("/v1/ready", environ_base={"REMOTE_ADDR": "10.7.1.1"})
    assert limited.get_json()["error"]["code"] == "rate_limited" and limited.headers["Retry-After"].isdigit()
    assert c.get("/v1/ready", environ_base={"REMOTE_ADDR": "10.7.1.2"}).status_code == 503
