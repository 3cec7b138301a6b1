"""Out-of-band verification over HTTP (issue #17), on devnet with the real signing gate:
a spend above the `verify` threshold waits in awaiting_verification with its coins
reserved; the e-mailed page confirms (→ broadcast) or cancels (→ cancelled, coins
freed); expired, reused and CSRF-less requests are refused; the TOTP path counts a code
once and cancels after five wrong ones; a freeze during verification wins; a loosening
waits for its delay and the second channel; no token, code or address is stored or
logged in plaintext. The clock of jobs is passed in."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from client.phone import PhoneWallet
from cosigner.model import Spend
from messaging.model import Notification
from store.base import utcnow
from store.session import session_scope
from tests.api import verification_kit as vk
from tests.api.accounts_kit import create, fund
from tests.api.test_policy import run_due_jobs, signed_spend, submit
from verification.model import VerificationChannel, VerificationRequest

THRESHOLD = 100_000


@pytest.fixture
def owner(device, chain_node, mine, chain_settings):
    """An account with one 0.5 BTC coin, a confirmed e-mail channel and a verify rule."""
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.5")
    vk.with_email(device, chain_settings, account)
    device.call("PUT", f"/v1/accounts/{account['account_id']}/policy",
                {"verify": {"above_sat": THRESHOLD, "channel": "either"}})
    return phone, account


def _held(device, phone, account, chain_node, amount=1_000_000):
    spend, signed = signed_spend(device, phone, account, chain_node, amount=amount)
    assert spend["policy_preview"]["verify"] in ("either", "email", "totp")
    status, _, body = submit(device, spend, signed)
    assert status == 200 and body["state"] == "awaiting_verification" and body["txid"] is None
    return spend


def _state(device, spend) -> dict:
    return device.call("GET", f"/v1/spends/{spend['spend_id']}")


def _post_page(chain_app, url: str, *, csrf: bool = True):
    tc = chain_app.test_client()
    page = tc.get(vk.page_path(url))
    assert page.status_code == 200, page.status_code
    form = dict(vk.query(url))
    if csrf:
        form["csrf_token"] = vk.csrf_of(page.get_data(as_text=True))
    return page, tc.post("/verify", data=form)


def _second_spend_status(device, account, chain_node) -> int:
    outputs = [{"address": chain_node.faucet.getnewaddress(), "amount_sat": 30_000_000}]
    return device.request("POST", f"/v1/accounts/{account['account_id']}/spends",
                          {"outputs": outputs, "fee_rate_sat_vb": 2})[0]


def test_spend_above_threshold_waits_and_the_page_confirms_it(device, owner, chain_node, chain_app, chain_settings,
                                                              mine):
    phone, account = owner
    small, signed = signed_spend(device, phone, account, chain_node, amount=THRESHOLD)
    assert small["policy_preview"]["verify"] is None
    assert submit(device, small, signed)[2]["state"] == "broadcast"        # at the threshold: no verification
    mine(1)
    spend = _held(device, phone, account, chain_node)
    assert _second_spend_status(device, account, chain_node) == 422       # its coins stay reserved (one coin)
    page, done = _post_page(chain_app, vk.links(chain_settings)["confirm"])
    html = page.get_data(as_text=True)
    assert "1,000,000 sat" in html and account["name"] in html and 'id="confirm"' in html and 'id="cancel"' not in html
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert done.status_code == 200 and "sent to the network" in done.get_data(as_text=True)
    got = _state(device, spend)
    assert got["state"] == "broadcast" and got["txid"] in chain_node.rpc().getrawmempool()


def test_cancel_link_cancels_the_spend_and_frees_its_coins(device, owner, chain_node, chain_app, chain_settings):
    phone, account = owner
    spend = _held(device, phone, account, chain_node)
    before = set(chain_node.rpc().getrawmempool())
    page, done = _post_page(chain_app, vk.links(chain_settings)["cancel"])
    assert 'id="cancel"' in page.get_data(as_text=True) and done.status_code == 200
    assert _state(device, spend)["state"] == "cancelled"
    assert set(chain_node.rpc().getrawmempool()) == before
    assert _second_spend_status(device, account, chain_node) == 201       # the coin is free again
    assert any("cancelled" in m.subject.lower() for m in vk.mails(chain_settings, kind="verification.cancelled"))
    with session_scope(chain_settings.database_url) as s:
        owner_id = s.get(Spend, spend["spend_id"]).account_id
        kinds = {n.kind for n in s.query(Notification)}
    assert owner_id and {"verification_cancelled", "spend_cancelled"} <= kinds


def test_a_token_works_once_and_dies_with_its_request(device, owner, chain_node, chain_app, chain_settings):
    phone, account = owner
    _held(device, phone, account, chain_node)
    urls = vk.links(chain_settings)
    _, done = _post_page(chain_app, urls["confirm"])
    assert done.status_code == 200
    tc = chain_app.test_client()
    for url in urls.values():                                    # confirm again, or cancel afterwards
        assert tc.get(vk.page_path(url)).status_code == 404
        again = tc.post("/verify", data={**vk.query(url), "csrf_token": "0" * 64})
        assert again.status_code in (400, 404)
    assert "not valid" in tc.get("/verify?view_token=" + "A" * 22 + "&token=" + "B" * 22).get_data(as_text=True)


def test_post_without_csrf_is_refused_and_changes_nothing(device, owner, chain_node, chain_app, chain_settings):
    phone, account = owner
    spend = _held(device, phone, account, chain_node)
    url = vk.links(chain_settings)["confirm"]
    _, refused = _post_page(chain_app, url, csrf=False)
    assert refused.status_code == 400
    forged = chain_app.test_client().post("/verify", data={**vk.query(url), "csrf_token": vk.csrf_of(
        chain_app.test_client().get(vk.page_path(url)).get_data(as_text=True))}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    assert _state(device, spend)["state"] == "awaiting_verification"


def test_expired_link_is_refused_and_the_expiry_job_cancels(device, owner, chain_node, chain_app, chain_settings):
    phone, account = owner
    spend = _held(device, phone, account, chain_node)
    url = vk.links(chain_settings)["confirm"]
    with session_scope(chain_settings.database_url) as s:
        req = s.query(VerificationRequest).filter_by(subject_id=spend["spend_id"]).one()
        expires_at = req.expires_at
        assert expires_at - req.created_at == dt.timedelta(seconds=chain_settings.verify_ttl)
        s.execute(update(VerificationRequest).where(VerificationRequest.id == req.id)
                  .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert chain_app.test_client().get(vk.page_path(url)).status_code == 404
    run_due_jobs(chain_settings, expires_at + dt.timedelta(seconds=1))
    assert _state(device, spend)["state"] == "cancelled"
    assert _second_spend_status(device, account, chain_node) == 201


def test_freeze_during_verification_wins(device, owner, chain_node, chain_app, chain_settings):
    phone, account = owner
    spend = _held(device, phone, account, chain_node)
    url = vk.links(chain_settings)["confirm"]
    page = chain_app.test_client().get(vk.page_path(url))
    device.call("POST", f"/v1/accounts/{account['account_id']}/freeze", {"frozen": True})
    assert _state(device, spend)["state"] == "denied"                   # re-decided at once
    before = set(chain_node.rpc().getrawmempool())
    late = chain_app.test_client().post("/verify", data={**vk.query(url), "csrf_token": vk.csrf_of(
        page.get_data(as_text=True))})
    assert late.status_code == 404                                         # its links died with it
    assert set(chain_node.rpc().getrawmempool()) == before and _state(device, spend)["txid"] is None


def test_freeze_not_yet_reviewed_is_seen_by_the_gate_at_confirmation(device, owner, chain_node, chain_app,
                                                                      chain_settings):
    from tests.api.test_signing_gate import _store_without_review
    phone, account = owner
    spend = _held(device, phone, account, chain_node)
    _store_without_review(chain_settings, account["account_id"], frozen=True)
    before = set(chain_node.rpc().getrawmempool())
    _, done = _post_page(chain_app, vk.links(chain_settings)["confirm"])
    assert done.status_code == 200 and "refuses it now" in done.get_data(as_text=True)
    assert _state(device, spend)["state"] == "denied"
    assert set(chain_node.rpc().getrawmempool()) == before


def test_totp_confirms_once_and_five_wrong_codes_cancel(device, chain_node, mine, chain_settings):
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.5")
    aid = account["account_id"]
    totp = vk.with_totp(device, account)
    device.call("PUT", f"/v1/accounts/{aid}/policy", {"verify": {"above_sat": 0, "channel": "totp"}})
    first = _held(device, phone, account, chain_node)
    used = vk.totp_code(chain_settings, aid, totp)
    ok = device.call("POST", f"/v1/spends/{first['spend_id']}/verification", {"code": used})
    assert ok["state"] == "broadcast" and ok["txid"] in chain_node.rpc().getrawmempool()
    mine(1)

    second = _held(device, phone, account, chain_node, amount=500_000)
    status, _, body = device.request("POST", f"/v1/spends/{second['spend_id']}/verification", {"code": used})
    assert status == 422 and body["error"]["code"] == "verification_code_rejected"     # a code counts once
    assert body["error"]["details"]["attempts_left"] == 4
    wrong = "000000" if used != "000000" else "111111"
    for left in (3, 2, 1):
        status, _, body = device.request("POST", f"/v1/spends/{second['spend_id']}/verification", {"code": wrong})
        assert status == 422 and body["error"]["details"]["attempts_left"] == left
    status, _, body = device.request("POST", f"/v1/spends/{second['spend_id']}/verification", {"code": wrong})
    assert status == 409 and body["error"]["code"] == "verification_cancelled"
    assert _state(device, second)["state"] == "cancelled"
    with session_scope(chain_settings.database_url) as s:
        assert s.query(Notification).filter_by(kind="verification_cancelled").count() >= 1


def test_an_unconfirmed_loosening_is_not_applied_after_its_delay(device, owner, chain_settings):
    """The delay alone is not enough: without the second channel's confirmation (asked
    for VERIFY_TTL) the change is never applied; the expired confirmation cancels it."""
    phone, account = owner
    aid = account["account_id"]
    rules = {"verify": {"above_sat": THRESHOLD, "channel": "either"}}
    device.call("PUT", f"/v1/accounts/{aid}/policy", {**rules, "max_per_tx_sat": 1_000_000})
    change = device.call("PUT", f"/v1/accounts/{aid}/policy", {**rules, "max_per_tx_sat": 5_000_000})["pending_change"]
    assert vk.links(chain_settings)["confirm"]                     # the second channel was asked
    run_due_jobs(chain_settings, dt.datetime.fromisoformat(change["effective_at"]) + dt.timedelta(seconds=1))
    assert device.call("GET", f"/v1/accounts/{aid}/policy")["rules"]["max_per_tx_sat"] == 1_000_000
    changes = device.call("GET", f"/v1/accounts/{aid}/policy/changes")
    assert [c["state"] for c in changes if c["change_id"] == change["change_id"]] == ["cancelled"]


def test_a_loosening_waits_for_both_its_delay_and_the_confirmation(device, owner, chain_settings, chain_app):
    phone, account = owner
    aid = account["account_id"]
    first = device.call("PUT", f"/v1/accounts/{aid}/policy", {"verify": None})["pending_change"]
    assert device.call("GET", f"/v1/accounts/{aid}/policy")["rules"]["verify"] is not None
    page = chain_app.test_client().get(vk.page_path(vk.links(chain_settings)["confirm"]))
    assert "Loosen the spending policy" in page.get_data(as_text=True)
    _post_page(chain_app, vk.links(chain_settings)["confirm"])
    run_due_jobs(chain_settings, dt.datetime.fromisoformat(first["effective_at"]) - dt.timedelta(seconds=1))
    assert device.call("GET", f"/v1/accounts/{aid}/policy")["rules"]["verify"] is not None   # delay not over
    run_due_jobs(chain_settings, dt.datetime.fromisoformat(first["effective_at"]) + dt.timedelta(seconds=1))
    assert device.call("GET", f"/v1/accounts/{aid}/policy")["rules"]["verify"] is None


def test_cancel_link_cancels_a_pending_loosening(device, owner, chain_settings, chain_app):
    phone, account = owner
    aid = account["account_id"]
    change = device.call("PUT", f"/v1/accounts/{aid}/policy", {"verify": None})["pending_change"]
    _post_page(chain_app, vk.links(chain_settings)["cancel"])
    changes = device.call("GET", f"/v1/accounts/{aid}/policy/changes")
    assert [c["state"] for c in changes if c["change_id"] == change["change_id"]] == ["cancelled"]


def test_bad_inputs_are_refused_with_codes_and_store_nothing(device, chain_node, mine, chain_settings):
    phone = PhoneWallet()
    account = create(device, phone)
    aid = account["account_id"]
    status, _, body = device.request("POST", f"/v1/accounts/{aid}/verification/email", {"email": "not-an-address"})
    assert status == 400 and body["error"]["code"] == "invalid_email"
    status, _, body = device.request("PUT", f"/v1/accounts/{aid}/policy", {"verify": {"above_sat": 1}})
    assert status == 409 and body["error"]["code"] == "verification_channel_missing"
    status, _, body = device.request("PUT", f"/v1/accounts/{aid}/policy",
                                     {"verify": {"above_sat": 1, "above": {"max": "5.00", "currency": "USD"}}})
    assert status == 422
    status, _, body = device.request("POST", f"/v1/accounts/{aid}/verification/email/confirm", {"code": "123456"})
    assert status == 409 and body["error"]["code"] == "no_pending_channel"
    status, _, body = device.request("POST", f"/v1/accounts/{aid}/verification/email/confirm", {"code": "12ab"})
    assert status == 422
    status, _, body = device.request("DELETE", f"/v1/accounts/{aid}/verification/fax")
    assert status == 400 and body["error"]["code"] == "invalid_channel"
    status, _, body = device.request("POST", "/v1/verifications/vreq_nope", {"code": "123456"})
    assert status == 404 and body["error"]["code"] == "verification_not_found"
    with session_scope(chain_settings.database_url) as s:
        assert s.query(VerificationChannel).count() == 0 and s.query(VerificationRequest).count() == 0
    assert device.call("GET", f"/v1/accounts/{aid}/policy")["rules"]["verify"] is None


def test_wrong_email_code_five_times_drops_the_address(device, chain_node, chain_settings):
    phone = PhoneWallet()
    account = create(device, phone)
    aid = account["account_id"]
    device.call("POST", f"/v1/accounts/{aid}/verification/email", {"email": vk.EMAIL})
    for left in (4, 3, 2, 1, 0):
        status, _, body = device.request("POST", f"/v1/accounts/{aid}/verification/email/confirm", {"code": "000000"})
        assert status == 422 and body["error"]["details"]["attempts_left"] == left
    status, _, body = device.request("POST", f"/v1/accounts/{aid}/verification/email/confirm", {"code": "000000"})
    assert status == 409 and body["error"]["code"] == "no_pending_channel"


def test_replacing_the_email_waits_and_is_confirmed_on_the_old_address(device, owner, chain_settings, chain_app):
    phone, account = owner
    aid = account["account_id"]
    new = vk.with_email(device, chain_settings, account, "new@example.com")
    assert new["state"] == "waiting" and new["effective_at"]
    statuses = {c["channel_id"]: c["state"] for c in device.call("GET", f"/v1/accounts/{aid}/verification")["channels"]}
    assert statuses[new["channel_id"]] == "waiting" and "active" in statuses.values()
    url = vk.links(chain_settings, vk.EMAIL)["confirm"]                    # mailed to the OLD address
    assert "Replace the verification e-mail" in chain_app.test_client().get(vk.page_path(url)).get_data(as_text=True)
    _post_page(chain_app, url)
    run_due_jobs(chain_settings, dt.datetime.fromisoformat(new["effective_at"]) + dt.timedelta(seconds=1))
    channels = device.call("GET", f"/v1/accounts/{aid}/verification")["channels"]
    assert [(c["channel_id"], c["state"]) for c in channels if c["kind"] == "email"] == [(new["channel_id"], "active")]


def test_a_second_channel_waits_for_the_first(device, owner, chain_node, chain_settings, chain_app):
    """A thief holding the phone cannot add their own authenticator and confirm with it:
    adding a channel while one is in force waits for the delay and the e-mail."""
    phone, account = owner
    totp = vk.with_totp(device, account)
    aid = account["account_id"]
    states = {c["kind"]: c["state"] for c in device.call("GET", f"/v1/accounts/{aid}/verification")["channels"]}
    assert states == {"email": "active", "totp": "waiting"}
    spend = _held(device, phone, account, chain_node)
    status, _, body = device.request("POST", f"/v1/spends/{spend['spend_id']}/verification", {"code": totp.now()})
    assert status == 409 and body["error"]["code"] == "verification_channel_missing"
    assert _state(device, spend)["state"] == "awaiting_verification"
    assert any("Add the verification authenticator" in m.body for m in vk.mails(chain_settings, kind="verification.request"))


def test_no_token_code_or_address_in_plaintext_columns_or_logs(device, chain_node, mine, chain_settings, chain_app):
    from tests.api.test_recovery_flow import _scan_database
    from tests.logcapture import captured_logs
    with captured_logs() as stream:
        phone = PhoneWallet()
        account = create(device, phone)
        fund(chain_node, mine, device, account, "0.5")
        vk.with_email(device, chain_settings, account)
        totp = vk.with_totp(device, account)
        device.call("PUT", f"/v1/accounts/{account['account_id']}/policy", {"verify": {"above_sat": 0}})
        _held(device, phone, account, chain_node)
        urls = vk.links(chain_settings)
        _post_page(chain_app, urls["confirm"])
    code = vk.mails(chain_settings, kind="verification.email_code")[-1].body.split(" is ")[1][:6]
    needles = [vk.EMAIL, code, totp.secret] + [t for u in urls.values() for t in vk.query(u).values()]
    _scan_database(chain_settings.database_url, needles)
    logs = stream.getvalue()
    assert "/verify" in logs
    for n in needles:
        assert n not in logs
