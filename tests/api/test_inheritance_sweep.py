"""The inheritance sweep on devnet through the API (in-process app, the block follower,
timed steps called with an explicit `now`): after the release the beneficiary proves
the recovery key; an owner who cancels after the release, or freezes, stops the sweep
at signing time; then every coin goes to the beneficiary's own account through the
signing gate, the claim completes and the old owner's device is refused. No share in
the database's plaintext columns or the logs."""
from __future__ import annotations

import datetime as dt
import secrets

import pytest
from embit.psbt import PSBT
from sqlalchemy import update

from client.inheritance import Claimant
from client.phone import PhoneWallet
from client.recovery import sign_sweep
from client.sdk import ApiError
from store.base import utcnow
from store.session import session_scope
from tests.api.accounts_kit import fund
from tests.api.inheritance_kit import advance, apply_changes, befriend, device, setup_with_beneficiary
from tests.api.recovery_kit import account


def err(fn, *a, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*a, **kw)
    return info.value


def _release(settings, ben, aid):
    claimant = Claimant(ben)
    claim = claimant.start(aid)
    ends = dt.datetime.fromisoformat(claim["wait_ends_at"])
    assert advance(settings, claim["claim_id"], ends - dt.timedelta(minutes=1)) == "waiting"
    assert advance(settings, claim["claim_id"], ends + dt.timedelta(seconds=1)) == "released"
    return claimant, ben.claim(claim["claim_id"])


def _unblock(settings, claim_id):
    """The 30-day block passes (the cancellation moved 31 days into the past)."""
    from inheritance.model import InheritanceClaim
    with session_scope(settings.database_url) as s:
        s.execute(update(InheritanceClaim).where(InheritanceClaim.id == claim_id)
                  .values(closed_at=utcnow() - dt.timedelta(days=31)))


def test_inheritance_sweep_decided_at_signing(chain_app, chain_settings, chain_node, mine, follower):
    from tests.logcapture import captured_logs
    with captured_logs() as stream:
        _journey(chain_app, chain_settings, chain_node, mine, stream)


def _journey(app, settings, chain_node, mine, log_stream):
    owner, ben, other = device(app), device(app), device(app)
    phone = PhoneWallet()
    acct = account(owner, phone)
    aid = acct["account_id"]
    fund(chain_node, mine, owner, acct, "0.3")
    fund(chain_node, mine, owner, acct, "0.2")
    befriend(owner, ben)
    email = f"heir-{secrets.token_hex(4)}@example.org"
    split = setup_with_beneficiary(owner, ben.device_id, other.device_id, aid, phone, email)
    ben_share = split.share(0, 1)
    owner.set_plan(aid, [{"device_id": ben.device_id, "label": "Ben"}], 30)
    assert apply_changes(settings, aid, utcnow() + dt.timedelta(days=4)) == 1
    mine_dest = account(ben, PhoneWallet(), "heir")
    ben_dest = ben.call("GET", f"/v1/accounts/{mine_dest['account_id']}")

    # -- 1: released and proven, sweep built — the owner cancels: nothing can be signed
    claimant, claim = _release(settings, ben, aid)
    seed = claimant.rebuild(claim, ben_share)
    assert seed.mnemonic == phone.recovery.mnemonic
    e = err(claimant.prove, claim, PhoneWallet().recovery)
    assert (e.status, e.code) == (422, "proof_invalid")
    assert claimant.prove(claim, seed)["proven"] is True
    # in inheritance-sweep mode the owner's ordinary spends are refused
    e = err(owner.call, "POST", f"/v1/accounts/{aid}/spends",
            {"outputs": [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 1_000_000}]})
    assert (e.status, e.code) == (409, "inheritance_sweep_mode")
    foreign = account(other, PhoneWallet(), "not-ben")
    e = err(ben.build_claim_sweep, claim["claim_id"], foreign["account_id"])
    assert (e.status, e.code) == (422, "sweep_destination_not_owned")
    spend = ben.build_claim_sweep(claim["claim_id"], mine_dest["account_id"], fee_rate=2)
    assert len(spend["inputs"]) == 2 and spend["policy_preview"]["reasons"][0]["rule"] == "inheritance_sweep"
    signed = sign_sweep(seed, spend, ben_dest["receive_descriptor"])
    assert owner.decline_claim(claim["claim_id"])["state"] == "cancelled"
    e = err(ben.submit_claim_sweep, claim["claim_id"], signed)
    assert (e.status, e.code) == (410, "claim_closed")
    assert chain_node.rpc().getrawmempool() == []
    _unblock(settings, claim["claim_id"])

    # -- 2: released and proven again — the owner freezes: the gate denies the sweep
    claimant, claim = _release(settings, ben, aid)
    seed = claimant.rebuild(claim, ben_share)
    claimant.prove(claim, seed)
    spend = ben.build_claim_sweep(claim["claim_id"], mine_dest["account_id"], fee_rate=2)
    signed = sign_sweep(seed, spend, ben_dest["receive_descriptor"])
    owner.call("POST", f"/v1/accounts/{aid}/freeze", {"frozen": True})
    e = err(ben.submit_claim_sweep, claim["claim_id"], signed)
    assert (e.status, e.code) == (422, "policy_denied")
    assert {"rule": "frozen", "by": "owner"} in e.details["reasons"]
    assert chain_node.rpc().getrawmempool() == []
    e = err(ben.build_claim_sweep, claim["claim_id"], mine_dest["account_id"])
    assert (e.status, e.code) == (422, "account_frozen")
    # the owner lifts the freeze (a loosening: it waits), and does not cancel
    unfreeze = owner.call("POST", f"/v1/accounts/{aid}/freeze", {"frozen": False})
    from cosigner.policy_service import apply_change
    with session_scope(settings.database_url) as s:
        assert apply_change(s, unfreeze["pending_changes"][0], utcnow() + dt.timedelta(days=4))
    # a platform-key signature is not what the sweep needs
    spend = ben.build_claim_sweep(claim["claim_id"], mine_dest["account_id"], fee_rate=2)
    wrong = PSBT.from_string(spend["psbt"])
    wrong.sign_with(phone.platform.root)
    e = err(ben.submit_claim_sweep, claim["claim_id"], wrong.to_string())
    assert e.code == "recovery_signature_missing"
    # the old owner's device still works until the broadcast
    assert owner.call("GET", f"/v1/accounts/{aid}")["account_id"] == aid
    done = claimant.sweep(claim["claim_id"], seed, ben_dest, fee_rate=2)
    assert done["state"] == "broadcast" and done["txid"] in chain_node.rpc().getrawmempool()
    assert ben.claim(claim["claim_id"])["state"] == "completed"
    mine(1)
    assert ben.call("GET", f"/v1/accounts/{mine_dest['account_id']}/balance")["confirmed"] == \
        50_000_000 - done["fee_sat"]
    assert ben.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 0
    e = err(owner.call, "GET", "/v1/devices/me")
    assert (e.status, e.code) == (401, "device_revoked")

    # no plaintext share anywhere in the database or the logs
    from tests.api.test_recovery_flow import _scan_database
    needles = [m for g in split.groups for m in g] + [email]
    needles += [" ".join(m.split()[:4]) for g in split.groups for m in g]
    _scan_database(settings.database_url, needles)
    logs = log_stream.getvalue()
    assert "POST /v1/inheritance/claims" in logs
    for n in needles:
        assert n not in logs
