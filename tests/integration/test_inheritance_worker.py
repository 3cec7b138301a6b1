"""A real Celery worker releases an inheritance claim through its durable
`inheritance.advance` job and the reconciler; a worker killed (SIGKILL) in the middle of
the release loses nothing: the step's transaction dies with it, and once the job is
stale the reconciler hands it to another worker, which releases the claim exactly once."""
from __future__ import annotations

import base64
import datetime as dt
import os

from sqlalchemy import select, update

from store.base import utcnow
from store.session import session_scope
from tests.integration.worker_kit import broker_url as _broker, kill_mid_step_then_finish, worker_env


def _waiting_claim(settings):
    """An account with a 2-of-3 setup (the beneficiary holds member 1), a plan naming
    the beneficiary and a claim whose wait is over (the clock moved past it)."""
    from nacl.public import PrivateKey
    from client.phone import PhoneWallet
    from client.recovery import setup_body, split_recovery
    from cosigner.model import Account
    from devices.model import Device
    from inheritance import claims
    from inheritance.context import inheritance_context
    from inheritance.model import InheritanceClaim, InheritancePlan
    from messaging.model import Contact
    from recovery import setup
    from recovery.model import RecoveryHolder
    from workers.jobs import ScheduledJob
    ctx = inheritance_context(settings)
    now = utcnow()
    with session_scope(settings.database_url) as s:
        devs = [Device(id=f"dev_{os.urandom(8).hex()}", key_type="ed25519", public_key=os.urandom(32),
                       key_fingerprint=os.urandom(16).hex(), created_at=now) for _ in range(2)]
        s.add_all(devs)
        s.flush()
        owner, ben = (d.id for d in devs)
        lo, hi = sorted((owner, ben))
        s.add(Contact(id=f"ct_{os.urandom(6).hex()}", device_a=lo, device_b=hi, created_at=now))
        phone = PhoneWallet()
        acct = Account(id=f"acct_{os.urandom(6).hex()}", owner_device_id=owner, name="w", network="regtest",
                       template="2of3", recovery_key=phone.recovery.account_key(), receive_descriptor="-",
                       next_receive_index=0, created_at=now)
        s.add(acct)
        s.flush()
        split = split_recovery(phone)
        rs, _ = setup.put(s, ctx.recovery, acct, setup_body(split, "heir@example.org", [
            {"kind": "device", "device_id": owner, "group_index": 0, "member_index": 0},
            {"kind": "device", "device_id": ben, "role": "beneficiary", "group_index": 0, "member_index": 1},
            {"kind": "operator", "group_index": 0, "member_index": 2}]), actor=owner, now=now)
        holder = s.scalar(select(RecoveryHolder).where(RecoveryHolder.setup_id == rs.id,
                                                       RecoveryHolder.device_id == ben))
        s.add(InheritancePlan(account_id=acct.id, waiting_days=30, version=1, created_at=now, updated_at=now,
                              beneficiaries=[{"device_id": ben, "label": None, "holder_id": holder.id}]))
        s.flush()
        key = PrivateKey.generate()
        claim = claims.start(s, ctx, device_id=ben, account_id=acct.id, sealing_key=bytes(key.public_key), now=now)
        assert claim.state == "waiting"
        past = now - dt.timedelta(seconds=1)
        s.execute(update(InheritanceClaim).where(InheritanceClaim.id == claim.id)
                  .values(wait_ends_at=past, next_reminder_at=None))
        s.execute(update(ScheduledJob).where(ScheduledJob.subject == claim.id).values(due_at=past))
        return claim.id, key, split


def test_killed_worker_mid_release_reconciler_finishes(require_postgres, clean_db, redis_url, tmp_path, master_key):
    from audit.model import AuditEvent
    from inheritance.model import InheritanceClaim
    from tests.conftest import make_settings
    from workers.jobs import ScheduledJob
    broker = _broker(redis_url, tmp_path)
    if redis_url:
        import redis as redis_lib
        redis_lib.Redis.from_url(broker).flushdb()
    settings = make_settings(clean_db, None, broker, MASTER_KEY=master_key)
    claim_id, key, split = _waiting_claim(settings)
    log_path = tmp_path / "worker.log"

    def unchanged():      # the step's transaction died with the worker
        with session_scope(clean_db) as s:
            claim = s.get(InheritanceClaim, claim_id)
            return claim.state == "waiting" and claim.released_share is None

    def released():
        with session_scope(clean_db) as s:
            c = s.get(InheritanceClaim, claim_id)
            return c if c.state == "released" else None
    claim, job_id = kill_mid_step_then_finish(settings, worker_env(clean_db, broker, master_key), log_path,
                                              table="inheritance_claims", subject=claim_id, unchanged=unchanged,
                                              finished=released)
    from nacl.public import SealedBox
    assert SealedBox(key).decrypt(claim.released_share).decode() == split.share(0, 2)
    assert base64.b64encode(claim.released_share)
    with session_scope(clean_db) as s:
        releases = s.scalars(select(AuditEvent).where(AuditEvent.subject == claim_id,
                                                      AuditEvent.action == "inheritance.released")).all()
        assert len(releases) == 1
        assert s.get(ScheduledJob, job_id).state == "done"
    worker_log = log_path.read_text()
    for group in split.groups:
        for mnemonic in group:
            assert mnemonic not in worker_log and " ".join(mnemonic.split()[:4]) not in worker_log
