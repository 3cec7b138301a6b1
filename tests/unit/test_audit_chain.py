"""The audit hash chain detects any tampering (pure)."""
import dataclasses
import datetime as dt

import pytest
from hypothesis import given, strategies as st

from audit.chain import GENESIS_HASH, AuditDetailsError, Entry, check_details, entry_hash, verify_entries

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def build(n: int) -> list[Entry]:
    entries, prev = [], GENESIS_HASH
    for i in range(1, n + 1):
        at = T0 + dt.timedelta(seconds=i)
        details = {"n": i, "note": f"event {i}"}
        h = entry_hash(i, at, f"actor{i % 3}", "thing.done", f"subj{i}", details, prev)
        entries.append(Entry(i, at, f"actor{i % 3}", "thing.done", f"subj{i}", details, prev, h))
        prev = h
    return entries


def test_intact_chain_verifies():
    report = verify_entries(build(20))
    assert report.ok and report.checked == 20


def test_empty_chain_is_ok():
    assert verify_entries([]).ok


@given(n=st.integers(min_value=1, max_value=15), data=st.data())
def test_changing_any_field_of_any_row_is_detected(n, data):
    entries = build(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    field = data.draw(st.sampled_from(["at", "actor", "action", "subject", "details", "hash", "prev_hash"]))
    value = {"at": entries[i].at + dt.timedelta(microseconds=1), "actor": "mallory", "action": "x",
             "subject": "other", "details": {"n": -1}, "hash": "f" * 64, "prev_hash": "e" * 64}[field]
    entries[i] = dataclasses.replace(entries[i], **{field: value})
    report = verify_entries(entries)
    assert not report.ok
    assert report.first_broken_seq in (i + 1, i + 2)


def test_deleting_a_row_is_detected():
    entries = build(5)
    del entries[2]
    report = verify_entries(entries)
    assert not report.ok and report.first_broken_seq == 3


def test_reordering_is_detected():
    entries = build(4)
    entries[1], entries[2] = entries[2], entries[1]
    assert not verify_entries(entries).ok


def test_rehashing_a_changed_row_still_breaks_the_next_link():
    entries = build(4)
    e = entries[1]
    details = {"n": 999}
    entries[1] = dataclasses.replace(e, details=details, hash=entry_hash(
        e.seq, e.at, e.actor, e.action, e.subject, details, e.prev_hash))
    report = verify_entries(entries)
    assert not report.ok and report.first_broken_seq == 3


@pytest.mark.parametrize("details", [{"password": "x"}, {"nested": {"otp_code": 1}}, {"items": [{"share": "w"}]}])
def test_secret_named_details_are_refused(details):
    with pytest.raises(AuditDetailsError):
        check_details(details)
