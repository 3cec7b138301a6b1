"""The whole recovery on devnet through the API with three reference clients (old
phone, contact, new phone) and the operator: setup with the contact's share delivered
as a Signal message, funds, OTP from the outbox, the contact's sealed share, the delay
passed by calling the service with a later `now`, the operator share released, SLIP-39
combine on the new phone, completion, a new account and the sweep of every UTXO."""
from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

import pytest
from sqlalchemy import MetaData

from client.messaging import MessagingClient, SignalMessenger, ensure_keys
from client.phone import PhoneWallet
from client.recovery import HeldShares, Recoverer, approve, collect_shares, deliver_share, sign_sweep
from client.sdk import ApiError
from store.base import utcnow
from tests.api.accounts_kit import fund
from tests.api.recovery_kit import STAFF_ENV, account, advance, device, outbox_codes, setup_2of3


@pytest.fixture
def rec_settings(settings_factory, chain_node, master_key):
    return settings_factory(BITCOIND_RPC_URL=chain_node.url, BITCOIND_RPC_USER=chain_node.user,
                            BITCOIND_RPC_PASSWORD=chain_node.password, BITCOIND_TIMEOUT=60,
                            BITCOIND_WALLET_PREFIX=f"r{secrets.token_hex(3)}-", MASTER_KEY=master_key,
                            STAFF_API_KEYS=STAFF_ENV)


@pytest.fixture
def rec_app(app_factory, rec_settings):
    return app_factory(rec_settings)


def test_lost_phone_recovered_and_swept(rec_app, rec_settings, chain_node, mine, follower, tmp_path):
    from tests.logcapture import captured_logs
    with captured_logs() as stream:
        _journey(rec_app, rec_settings, chain_node, mine, follower, tmp_path, stream)


def _journey(app, settings, chain_node, mine, follower, tmp_path, log_stream):
    email = f"owner-{secrets.token_hex(4)}@example.org"
    old, contact = device(app), device(app)
    phone = PhoneWallet()
    acct = account(old, phone)
    aid = acct["account_id"]
    fund(chain_node, mine, old, acct, "0.3")
    fund(chain_node, mine, old, acct, "0.2")
    # the old phone left a spend built and unsigned: it reserves a coin of the account
    left_open = old.call("POST", f"/v1/accounts/{aid}/spends",
                         {"outputs": [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 10_000_000}]})
    assert old.call("GET", f"/v1/accounts/{aid}/balance")["reserved_sat"] > 0

    # the contact's share travels as a Signal message (contacts first, then E2EE)
    old_m = SignalMessenger(MessagingClient.like(old), str(tmp_path / "old.db"))
    con_m = SignalMessenger(MessagingClient.like(contact), str(tmp_path / "contact.db"))
    ensure_keys(old_m)
    ensure_keys(con_m)
    con_m.accept(json_qr(old_m.invite("Owner")))
    split, body, status = setup_2of3(old, contact.device_id, aid, phone, email)
    assert status["status"] == "at_risk"  # nobody but the operator has proved custody yet
    deliver_share(old_m, contact.device_id, aid, split.share(0, 1))
    held = HeldShares()
    assert collect_shares(con_m, held) == 1 and held.items[aid]["share"] == split.share(0, 1)

    # the phone is lost; a new phone asks for recovery
    new = device(app)
    rec = Recoverer(new)
    started = rec.start(email)
    assert started["state"] == "requested" and "account_id" not in started
    code = outbox_codes(settings, email)[-1]
    case = new.otp(started["case_id"], code)
    assert case["state"] == "collecting" and case["account_id"] == aid
    delay_ends = dt.datetime.fromisoformat(case["delay_ends_at"])
    assert dt.timedelta(days=7) - dt.timedelta(minutes=1) < delay_ends - utcnow() <= dt.timedelta(days=7)

    # the contact compares the phrase and returns its share sealed to the new phone
    req = contact.requests()
    assert [r["case_id"] for r in req] == [case["case_id"]] and req[0]["verification_phrase"] == \
        case["verification_phrase"]
    approve(contact, req[0], held.items[aid]["share"], expected_phrase=case["verification_phrase"])
    assert new.case(case["case_id"])["state"] == "waiting"
    assert new.case(case["case_id"])["operator_share_sealed"] is None
    # before the delay nothing is released, even when the worker runs
    assert advance(settings, case["case_id"], utcnow() + dt.timedelta(days=6)) == "waiting"
    assert advance(settings, case["case_id"], delay_ends + dt.timedelta(seconds=1)) == "released"
    released = new.case(case["case_id"])
    assert released["operator_share_sealed"]

    seed = rec.rebuild(released)
    assert seed.mnemonic == phone.recovery.mnemonic
    with pytest.raises(ApiError) as bad:  # a signature by another key proves nothing
        rec.complete(released, PhoneWallet().recovery)
    assert (bad.value.status, bad.value.code) == (422, "proof_invalid")
    done = rec.complete(released, seed)
    assert done["state"] == "completed"
    with pytest.raises(ApiError) as revoked:
        old.call("GET", "/v1/devices/me")
    assert (revoked.value.status, revoked.value.code) == (401, "device_revoked")
    assert new.call("GET", f"/v1/accounts/{aid}")["account_id"] == aid

    # in sweep mode an ordinary spend is refused when it is built: nothing is reserved
    # (signing it would be refused too: `recovery_sweep_only`, the submit guard)
    faucet_addr = chain_node.faucet.getnewaddress()
    with pytest.raises(ApiError) as refused:
        new.call("POST", f"/v1/accounts/{aid}/spends", {"outputs": [{"address": faucet_addr, "amount_sat": 1_000_000}]})
    assert (refused.value.status, refused.value.code) == (409, "sweep_mode")
    from embit.psbt import PSBT

    # a destination that is not the new device's account is refused
    with pytest.raises(ApiError) as foreign:
        new.build_sweep(aid, account(contact, PhoneWallet(), "carol")["account_id"])
    assert (foreign.value.status, foreign.value.code) == (422, "sweep_destination_not_owned")

    # the sweep: every UTXO to a new account of the new phone, signed with the recovery key
    new_phone = PhoneWallet()
    dest = account(new, new_phone, "fresh")
    # an incoming payment still unconfirmed: the sweep would leave it behind, so it waits
    late = new.call("POST", f"/v1/accounts/{aid}/addresses")["address"]
    chain_node.faucet.sendtoaddress(late, Decimal("0.05"))
    follower.run_once()
    with pytest.raises(ApiError) as pending:
        new.build_sweep(aid, dest["account_id"], fee_rate=2)
    assert (pending.value.status, pending.value.code) == (422, "unconfirmed_funds")
    assert pending.value.details["unconfirmed_sat"] == 5_000_000
    mine(1)
    sweep = new.build_sweep(aid, dest["account_id"], fee_rate=2)
    # every coin, the one the old phone's open spend held included (that spend is cancelled)
    assert len(sweep["inputs"]) == 3 and [o["change"] for o in sweep["outputs"]] == [False]
    assert sum(i["amount_sat"] for i in sweep["inputs"]) == 55_000_000
    assert new.call("GET", f"/v1/spends/{left_open['spend_id']}")["state"] == "cancelled"
    platform_signed = PSBT.from_string(sweep["psbt"])
    platform_signed.sign_with(phone.platform.root)
    with pytest.raises(ApiError) as wrong_key:  # the platform key is not what sweep mode needs
        new.call("POST", f"/v1/spends/{sweep['spend_id']}/signatures", {"psbt": platform_signed.to_string()})
    assert wrong_key.value.code == "recovery_signature_missing"
    broadcast = new.call("POST", f"/v1/spends/{sweep['spend_id']}/signatures",
                         {"psbt": sign_sweep(seed, sweep, dest["receive_descriptor"])})
    assert broadcast["state"] == "broadcast"
    mine(1)
    assert new.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 0
    assert new.call("GET", f"/v1/accounts/{dest['account_id']}/balance")["confirmed"] == \
        55_000_000 - sweep["fee_sat"]
    with pytest.raises(ApiError) as empty:  # nothing is left behind
        new.build_sweep(aid, dest["account_id"], fee_rate=2)
    assert empty.value.code == "nothing_to_sweep"

    # no plaintext share, OTP or email anywhere in the database or the logs
    needles = [m for g in split.groups for m in g] + [code, email]
    needles += [" ".join(m.split()[:4]) for g in split.groups for m in g]
    _scan_database(settings.database_url, needles)
    logs = log_stream.getvalue()
    assert "POST /v1/recoveries" in logs
    for n in needles:
        assert n not in logs
    old_m.close()
    con_m.close()


def json_qr(invite: dict) -> str:
    import json
    return invite["qr_payload"] if isinstance(invite["qr_payload"], str) else json.dumps(invite["qr_payload"])


def _scan_database(url: str, needles: list[str]) -> None:
    from store.session import engine_for
    engine = engine_for(url)
    meta = MetaData()
    meta.reflect(bind=engine)
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(table.select()):
                text = " ".join(v.decode("latin-1") if isinstance(v, (bytes, memoryview)) and
                                not isinstance(v, memoryview) else str(v) for v in row)
                for n in needles:
                    assert n not in text, f"plaintext secret in table {table.name}"
