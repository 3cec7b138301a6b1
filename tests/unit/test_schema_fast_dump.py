"""DeviceSchema.dump's written-out path gives exactly marshmallow's dump (or leaves the
object to marshmallow)."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from hypothesis import given, settings, strategies as st
from marshmallow import Schema
from sqlalchemy import create_engine, insert, select

from app.schemas import DeviceSchema
from devices.model import Device


def _marshmallow(schema, obj, **kw):
    return Schema.dump(schema, obj, **kw)


_text = st.one_of(st.text(max_size=12), st.none(), st.integers(), st.binary(max_size=4))
_when = st.one_of(st.datetimes(), st.datetimes(timezones=st.just(dt.timezone.utc)), st.none(), st.text(max_size=4))


@settings(max_examples=300)
@given(values=st.fixed_dictionaries({"id": _text, "key_type": _text, "key_fingerprint": _text, "platform": _text,
                                     "push_token": _text, "created_at": _when, "revoked_at": _when}),
       drop=st.sets(st.sampled_from(["id", "platform", "push_token", "revoked_at"]), max_size=2))
def test_fast_dump_is_marshmallows_dump(values, drop):
    obj = SimpleNamespace(**{k: v for k, v in values.items() if k not in drop})
    schema = DeviceSchema()
    try:
        expected = _marshmallow(schema, obj)
    except Exception as exc:  # noqa: BLE001 — marshmallow refuses this value: so must dump()
        try:
            schema.dump(obj)
        except type(exc):
            return
        raise AssertionError(f"dump() accepted what marshmallow refuses: {values}") from None
    got = schema.dump(obj)
    assert got == expected and list(got) == list(expected)


def test_rows_and_orm_devices_dump_as_marshmallow_dumps_them():
    engine = create_engine("sqlite://")
    Device.__table__.create(engine)
    now = dt.datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
    with engine.begin() as conn:
        conn.execute(insert(Device.__table__), [
            {"id": "dev_1", "key_type": "ed25519", "public_key": b"k" * 32, "key_fingerprint": "fp1",
             "platform": "ios", "push_token": "tok", "created_at": now, "revoked_at": None},
            {"id": "dev_2", "key_type": "ecdsa-p256", "public_key": b"p" * 33, "key_fingerprint": "fp2",
             "platform": None, "push_token": None, "created_at": now, "revoked_at": now}])
        rows = conn.execute(select(*Device.__table__.c)).all()
    schema = DeviceSchema()
    for row in rows:
        orm = Device(**row._mapping)
        for obj in (row, orm):
            assert schema.dump(obj) == _marshmallow(schema, obj)
    assert schema.dump(rows[0])["has_push_token"] is True and schema.dump(rows[1])["revoked_at"] is not None
    assert schema.dump(rows, many=True) == _marshmallow(schema, rows, many=True)
    assert DeviceSchema(only=("device_id",)).dump(rows[0]) == {"device_id": "dev_1"}


def test_a_device_takes_the_written_out_path(monkeypatch):
    device = SimpleNamespace(id="dev_1", key_type="ed25519", key_fingerprint="fp", platform=None, push_token="",
                             created_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), revoked_at=None)
    expected = _marshmallow(DeviceSchema(), device)

    def refuse(*_a, **_kw):
        raise AssertionError("marshmallow's dump was called")
    monkeypatch.setattr(Schema, "dump", refuse)
    assert DeviceSchema().dump(device) == expected == {
        "device_id": "dev_1", "key_type": "ed25519", "key_fingerprint": "fp", "platform": None,
        "has_push_token": False, "created_at": "2026-01-01T00:00:00+00:00", "revoked_at": None}
