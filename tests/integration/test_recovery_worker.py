"""A real Celery worker releases a recovery case through the scheduled job and the
reconciler; a worker killed (SIGKILL) in the middle of that step loses nothing: the
step's transaction dies with it, and once the claim is stale the reconciler hands the
job to another worker, which finishes the case exactly once."""
from __future__ import annotations

import base64
import datetime as dt
import os

from sqlalchemy import select, update

from store.base import utcnow
from store.session import session_scope
from tests.integration.worker_kit import broker_url as _broker, kill_mid_step_then_finish, worker_env


def _waiting_case(settings):
    """A case whose delay is over (the clock moved past it): waiting, job due now."""
    from client.phone import PhoneWallet
    from client.recovery import Recoverer, setup_body, split_recovery
    from cosigner.model import Account
    from devices.model import Device
    from recovery import cases, responses, setup, staff
    from recovery.context import recovery_context
    from workers.jobs import ScheduledJob
    ctx = recovery_context(settings)
    now = utcnow()
    with session_scope(settings.database_url) as s:
        devs = [Device(id=f"dev_{os.urandom(8).hex()}", key_type="ed25519", public_key=os.urandom(32),
                       key_fingerprint=os.urandom(16).hex(), created_at=now) for _ in range(3)]
        s.add_all(devs)
        s.flush()
        owner, contact, requester = (d.id for d in devs)
        phone = PhoneWallet()
        acct = Account(id=f"acct_{os.urandom(6).hex()}", owner_device_id=owner, name="w", network="regtest",
                       template="2of3", recovery_key=phone.recovery.account_key(), receive_descriptor="-",
                       next_receive_index=0, created_at=now)
        s.add(acct)
        s.flush()
        split = split_recovery(phone)
        setup.put(s, ctx, acct, setup_body(split, "w@example.org", [
            {"kind": "device", "device_id": owner, "group_index": 0, "member_index": 0},
            {"kind": "device", "device_id": contact, "group_index": 0, "member_index": 1},
            {"kind": "operator", "group_index": 0, "member_index": 2}]), actor=owner, now=now)
        rec = Recoverer.__new__(Recoverer)
        from nacl.public import PrivateKey
        rec.private = PrivateKey.generate()
        case = cases.start(s, ctx, device_id=requester, email="w@example.org", sealing_key=bytes(rec.private.public_key),
                           now=now)
        staff.verify_identity(s, ctx, case.id, "alice", now)
        from nacl.public import SealedBox
        responses.respond(s, ctx, case.id, contact, sealed=SealedBox(rec.private.public_key).encrypt(
            split.share(0, 1).encode()), now=now)
        assert case.state == "waiting"
        past = now - dt.timedelta(seconds=1)
        case.delay_ends_at = past
        s.execute(update(ScheduledJob).where(ScheduledJob.subject == case.id,
                                             ScheduledJob.due_at < case.expires_at).values(due_at=past))
        return case.id, rec, split


def test_killed_worker_mid_release_reconciler_finishes(require_postgres, clean_db, redis_url, tmp_path, master_key):
    from audit.model import AuditEvent
    from recovery.model import RecoveryCase
    from tests.conftest import make_settings
    broker = _broker(redis_url, tmp_path)
    if redis_url:
        import redis as redis_lib
        redis_lib.Redis.from_url(broker).flushdb()
    settings = make_settings(clean_db, None, broker, MASTER_KEY=master_key)
    case_id, rec, split = _waiting_case(settings)
    log_path = tmp_path / "worker.log"

    def unchanged():      # the step's transaction died with the worker
        with session_scope(clean_db) as s:
            return s.get(RecoveryCase, case_id).state == "waiting"

    def released():
        with session_scope(clean_db) as s:
            c = s.get(RecoveryCase, case_id)
            return c if c.state == "released" else None
    case, _ = kill_mid_step_then_finish(settings, worker_env(clean_db, broker, master_key), log_path,
                                        table="recovery_cases", subject=case_id, unchanged=unchanged,
                                        finished=released)
    opened = rec.open_shares({"sealed_shares": [], "operator_share_sealed": base64.b64encode(case.released_share).decode()})
    assert opened == [split.share(0, 2)]
    with session_scope(clean_db) as s:
        releases = s.scalars(select(AuditEvent).where(AuditEvent.subject == case_id,
                                                      AuditEvent.action == "recovery.released")).all()
        assert len(releases) == 1
    worker_log = log_path.read_text()
    for group in split.groups:
        for mnemonic in group:
            assert mnemonic not in worker_log and " ".join(mnemonic.split()[:4]) not in worker_log
