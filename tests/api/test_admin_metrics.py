"""Prometheus metrics: never on the public API port; the separate listener's exposition
parses with prometheus_client's parser and carries the families operators alert on."""
from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from admin.metrics import metrics_app, serve_in_thread


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_are_not_served_on_the_public_port(app):
    assert app.test_client().get("/metrics").status_code == 404
    assert app.test_client().get("/v1/metrics").status_code == 404


def test_exposition_parses_and_has_every_family(app, settings):
    c = app.test_client()
    assert c.get("/v1/health").status_code == 200
    assert c.get("/v1/admin/me").status_code == 401
    resp = Client(metrics_app(settings)).get("/metrics")
    assert resp.status_code == 200
    fams = _families(resp.get_data(as_text=True))
    for name in ("custos_http_request_duration_seconds", "custos_celery_task_failures", "custos_spends",
                 "custos_cosign_decisions", "custos_recovery_cases", "custos_message_queue_depth",
                 "custos_message_queue_oldest_age_seconds", "custos_push_send_failures", "custos_mail_send_failures",
                 "custos_scheduled_jobs", "custos_bitcoind_up", "custos_metrics_scrape_errors",
                 "custos_chain_mempool_feed_listening", "custos_chain_mempool_feed_pending"):
        assert name in fams, name
    latency = {(s.labels["endpoint"], s.labels["status"]) for s in fams["custos_http_request_duration_seconds"].samples
               if s.name.endswith("_count")}
    assert ("/v1/health", "200") in latency and ("/v1/admin/me", "401") in latency
    assert {s.labels["state"] for s in fams["custos_spends"].samples} >= {"broadcast", "awaiting_approval"}
    assert {s.labels["action"] for s in fams["custos_cosign_decisions"].samples} >= {"approve", "deny"}
    # the test settings point bitcoind at a closed port: reported, not raised
    assert [s.value for s in fams["custos_bitcoind_up"].samples] == [0]
    assert Client(metrics_app(settings)).get("/other").status_code == 404


def test_chain_metrics_against_the_test_chain(chain_settings):
    fams = _families(Client(metrics_app(chain_settings)).get("/metrics").get_data(as_text=True))
    assert [s.value for s in fams["custos_bitcoind_up"].samples] == [1]
    assert fams["custos_chain_tip_height"].samples[0].value > 100
    assert "custos_chain_tip_age_seconds" in fams and "custos_chain_watcher_lag_blocks" in fams


def test_mempool_feed_metrics_say_whether_passes_follow_the_feed(settings):
    """Before a listener holds the cursor: not listening. After a snapshot handed it to one
    and two notifications came: listening, two pending, and the snapshot's age."""
    import datetime as dt
    from chain import feed
    from chain.feed import FeedWriter
    from chain.zmqwake import Notification
    from store.session import session_scope

    def scrape():
        fams = _families(Client(metrics_app(settings)).get("/metrics").get_data(as_text=True))
        assert [s.value for s in fams["custos_metrics_scrape_errors"].samples
                if s.labels["section"] == "mempool_feed"] == [0]
        age = fams.get("custos_chain_mempool_snapshot_age_seconds")
        return (fams["custos_chain_mempool_feed_listening"].samples[0].value,
                fams["custos_chain_mempool_feed_pending"].samples[0].value, age.samples[0].value if age else None)
    listening, pending, _ = scrape()
    assert listening == 0
    writer = FeedWriter(settings.database_url)
    assert writer.record([], True)
    taken = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=90)
    with session_scope(settings.database_url) as s:
        p = feed.plan(s, taken)
        feed.advance(s, p, snapshot_sequence=7, snapshot_at=taken)
    assert writer.record([Notification("sequence", "ab" * 32, "A", 7), Notification("sequence", "cd" * 32, "R", 8)],
                         False)
    listening, pending, age = scrape()
    assert (listening, pending) == (1, 2) and 90 <= age < 600
    assert writer.stopped()
    with session_scope(settings.database_url) as s:                    # hand the cursor back
        feed.advance(s, feed.plan(s, dt.datetime.now(dt.timezone.utc)), snapshot_sequence=9,
                     snapshot_at=dt.datetime.now(dt.timezone.utc))
    assert scrape()[:2] == (0, 0)


def test_metrics_port_serves_a_separate_listener(settings):
    from tools.stack import free_port
    port = free_port()
    assert serve_in_thread(settings.replace(metrics_port=port)) == port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert "custos_spends" in _families(r.read().decode())
