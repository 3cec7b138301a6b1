"""Request latency is recorded on the (endpoint, method, status) child however often it
is looked up."""
from __future__ import annotations

from admin import metrics


def _count(endpoint: str, method: str, status: str) -> float:
    for family in metrics.REGISTRY.collect():
        if family.name == "custos_http_request_duration_seconds":
            for s in family.samples:
                if s.name.endswith("_count") and s.labels == {"endpoint": endpoint, "method": method,
                                                              "status": status}:
                    return s.value
    return 0.0


def test_observations_accumulate_per_label_set():
    before_ok, before_err = _count("/v1/test-latency", "GET", "200"), _count("/v1/test-latency", "GET", "404")
    for _ in range(3):
        metrics.observe_request("/v1/test-latency", "GET", 200, 0.002)
    metrics.observe_request("/v1/test-latency", "GET", 404, 0.2)
    assert _count("/v1/test-latency", "GET", "200") == before_ok + 3
    assert _count("/v1/test-latency", "GET", "404") == before_err + 1
