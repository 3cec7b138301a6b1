"""The admin console in headless Chromium: login with TOTP (enrollment by QR code, then a
normal login), every page; freezing an account makes the phone's spend refused; the
approvals queue approves a spend that broadcasts; the audit page flags a tampered row;
a support agent verifies a recovery case and two approvers release the share (one alone
cannot). Screenshots go to var/test-artifacts/."""
from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import update

from client.phone import PhoneWallet
from client.sdk import CustosClient, DeviceKey
from store.session import session_scope
from tests.api.accounts_kit import create, fund
from tests.browser import kit
from tests.conftest import flask_transport


def test_login_with_totp_enrollment_then_every_page(app, settings, browser, console_factory):
    console = console_factory(app, settings)
    kit.make_staff(settings, "olga", ["support", "approver", "auditor", "admin"], enrolled=False)
    page = browser
    page.goto(console.url + "/admin/")
    page.wait_for_url(re.compile(r".*/admin/login.*"))
    console.shot(page, "login")
    page.fill("#username", "olga")
    page.fill("#password", "not the password")
    page.click("#login")
    assert "Wrong username or password" in page.locator(".error").inner_text()
    page.fill("#username", "olga")
    page.fill("#password", kit.PASSWORD)
    page.click("#login")
    page.wait_for_url(re.compile(r".*/admin/totp.*"))
    assert page.locator("#qr svg").count() == 1                       # the enrollment QR code
    console.shot(page, "enroll-qr")
    secret = page.locator("#totp-key").text_content().strip()
    page.fill("#code", "000000")
    page.click("#verify")
    assert "wrong" in page.locator(".error").inner_text()
    page.fill("#code", kit.fresh_code(settings, "olga", secret))
    page.click("#verify")
    page.wait_for_url(re.compile(r".*/admin/$"))
    console.shot(page, "dashboard")
    assert "olga" in page.locator("#who").inner_text()
    cookie = next(c for c in page.context.cookies() if c["name"] == "custos_admin")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    for path, label in (("/admin/recoveries", "recovery-queue"), ("/admin/inheritance", "inheritance-claims"),
                        ("/admin/approvals", "approvals"),
                        ("/admin/accounts", "accounts"), ("/admin/audit", "audit"), ("/admin/staff", "staff"),
                        ("/admin/tokens", "tokens"), ("/admin/outbox", "outboxes")):
        page.goto(console.url + path)
        assert page.locator("h1").count() == 1 and not page.locator("p.error[role=alert]").count(), path
        console.shot(page, label)
    # an API token made in the console works on the API, once shown
    page.goto(console.url + "/admin/actions/token_create")
    page.fill("#f-name", "monitoring")
    page.check("#scope-status-read")
    console.confirm(page, "token")
    token = page.locator("#new-token").inner_text().strip()
    assert app.test_client().get("/v1/admin/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    console.logout(page)
    page.goto(console.url + "/admin/staff")
    page.wait_for_url(re.compile(r".*/admin/login.*"))
    console.login(page, "olga", secret, "second-login")                # enrolled: straight to the code


@pytest.fixture
def phone_account(chain_app, chain_node, mine):
    device = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(chain_app))
    device.register()
    phone = PhoneWallet()
    account = create(device, phone)
    fund(chain_node, mine, device, account, "0.2")
    return device, phone, account


def _signed_spend(device, phone, account, chain_node, amount=500_000):
    outputs = [{"address": chain_node.faucet.getnewaddress(), "amount_sat": amount}]
    spend = device.call("POST", f"/v1/accounts/{account['account_id']}/spends",
                        {"outputs": outputs, "fee_rate_sat_vb": 2})
    signed = phone.sign(phone.verify_spend(account, spend, outputs))
    return spend, device.request("POST", f"/v1/spends/{spend['spend_id']}/signatures", {"psbt": signed})


def test_freezing_an_account_refuses_the_phones_spend(chain_app, chain_settings, chain_node, phone_account,
                                                      browser, console_factory):
    device, phone, account = phone_account
    aid = account["account_id"]
    console = console_factory(chain_app, chain_settings)
    secret = kit.make_staff(chain_settings, "sue", ["support"])
    page = browser
    console.login(page, "sue", secret)
    page.goto(console.url + "/admin/accounts")
    page.fill("#q", aid)
    page.click("#find")
    page.wait_for_url(re.compile(rf".*/admin/accounts/{aid}$"))
    assert page.locator("#freeze-state").inner_text() == "Not frozen"
    assert page.locator("#unfreeze").count() == 0                       # support cannot unfreeze
    console.shot(page, "account")
    page.click("#freeze")
    page.fill("#f-reason", "customer called: phone stolen")
    page.fill("#totp", "000000")                                         # a wrong code: nothing happens
    page.click("#confirm")
    assert "TOTP code is wrong" in page.locator(".error").inner_text()
    console.confirm(page, "freeze", totp=("sue", secret), reason="customer called: phone stolen")
    assert "is frozen" in page.locator("#result").inner_text()
    page.click("#back")
    assert page.locator("#freeze-state").inner_text() == "Frozen by staff"
    console.shot(page, "account-frozen")
    spend, (status, _, body) = _signed_spend(device, phone, account, chain_node)
    assert status == 422 and body["error"]["code"] == "policy_denied"
    assert body["error"]["details"]["reasons"] == [{"rule": "frozen", "by": "staff"}]
    assert device.call("GET", f"/v1/spends/{spend['spend_id']}")["state"] == "denied"


def test_approvals_queue_approve(chain_app, chain_settings, chain_node, phone_account, browser, console_factory):
    device, phone, account = phone_account
    device.call("PUT", f"/v1/accounts/{account['account_id']}/policy",
                {"approvals": {"above_sat": 0, "required": 1, "staff": True}})
    spend, (status, _, held) = _signed_spend(device, phone, account, chain_node)
    assert status == 200 and held["state"] == "awaiting_approval"
    console = console_factory(chain_app, chain_settings)
    secret = kit.make_staff(chain_settings, "amir", ["approver"])
    page = browser
    console.login(page, "amir", secret)
    page.goto(console.url + "/admin/approvals")
    row = page.locator(f"tr[data-spend='{spend['spend_id']}']")
    assert "500,000 sat" in row.inner_text()
    console.shot(page, "queue")
    row.locator("a", has_text="Approve").click()
    console.confirm(page, "approve", note="checked with the customer by phone")
    assert "is now broadcast" in page.locator("#result").inner_text()
    console.shot(page, "approved")
    got = device.call("GET", f"/v1/spends/{spend['spend_id']}")
    assert got["state"] == "broadcast" and got["txid"] in chain_node.rpc().getrawmempool()
    page.goto(console.url + "/admin/approvals")
    assert page.locator("#empty").count() == 1


def test_audit_page_flags_a_tampered_row(app, settings, browser, console_factory):
    from audit.model import AuditEvent
    console = console_factory(app, settings)
    secret = kit.make_staff(settings, "ada", ["auditor"])
    for name in ("bea", "cy", "dot"):
        kit.make_staff(settings, f"{name}0", ["support"])
    page = browser
    console.login(page, "ada", secret)
    page.goto(console.url + "/admin/audit")
    assert page.locator("#chain-status").inner_text().startswith("Chain intact")
    console.shot(page, "intact")
    with session_scope(settings.database_url) as s:
        victim = s.query(AuditEvent).filter(AuditEvent.subject == "staff:cy0").one().seq
        s.execute(update(AuditEvent).where(AuditEvent.seq == victim).values(details={"roles": ["admin"]}))
    page.reload()
    status = page.locator("#chain-status").inner_text()
    assert f"BROKEN at entry #{victim}" in status and "does not match its hash" in status
    flagged = page.locator("tr.broken")
    assert flagged.count() == 1 and flagged.get_attribute("data-seq") == str(victim)
    assert "tampered" in flagged.inner_text()
    assert page.locator("tr.after-break").count() >= 1                  # later rows are marked unverifiable
    console.shot(page, "tampered")


def test_support_verifies_and_two_approvers_release_the_share(app_factory, settings_factory, master_key, browser,
                                                              console_factory):
    from client.recovery import Recoverer, approve
    from tests.api.recovery_kit import account, device, setup_2of3
    rsettings = settings_factory(MASTER_KEY=master_key)
    rapp = app_factory(rsettings)
    old, contact, new = device(rapp), device(rapp), device(rapp)
    phone = PhoneWallet()
    acct = account(old, phone)
    split, _, _ = setup_2of3(old, contact.device_id, acct["account_id"], phone, "owner@example.org")
    rec = Recoverer(new)
    cid = rec.start("owner@example.org")["case_id"]
    console = console_factory(rapp, rsettings)
    secrets_ = {sid: kit.make_staff(rsettings, sid, [role]) for sid, role in
                (("sam", "support"), ("ann", "approver"), ("bob", "approver"))}
    page = browser
    console.login(page, "sam", secrets_["sam"])
    page.goto(console.url + "/admin/recoveries")
    assert page.locator(f"tr[data-case='{cid}'] .state").inner_text() == "requested"
    console.shot(page, "queue")
    page.click(f"tr[data-case='{cid}'] a")
    assert page.locator("#approve-release").count() == 0               # support cannot approve a release
    console.shot(page, "case-requested")
    page.click("#verify-identity")
    console.confirm(page, "verify")
    assert "is now collecting" in page.locator("#result").inner_text()
    console.logout(page)
    approve(contact, contact.requests()[0], split.share(0, 1))          # the contact answers: waiting
    console.login(page, "ann", secrets_["ann"])
    page.goto(console.url + f"/admin/recoveries/{cid}")
    assert page.locator("#case-state").inner_text() == "waiting"
    assert page.locator("#verify-identity").count() == 0
    page.click("#approve-release")
    console.confirm(page, "approve-1", totp=("ann", secrets_["ann"]))
    assert "is now waiting" in page.locator("#result").inner_text()    # one approver alone: not released
    page.goto(console.url + f"/admin/actions/approve_release?case_id={cid}")
    console.confirm(page, "approve-again", totp=("ann", secrets_["ann"]))
    assert "different staff member" in page.locator(".error").inner_text()
    assert new.case(cid)["operator_share_sealed"] is None
    console.logout(page)
    console.login(page, "bob", secrets_["bob"])
    page.goto(console.url + f"/admin/recoveries/{cid}")
    page.click("#approve-release")
    console.confirm(page, "approve-2", totp=("bob", secrets_["bob"]))
    assert "is now released" in page.locator("#result").inner_text()
    page.goto(console.url + f"/admin/recoveries/{cid}")
    assert page.locator("#case-state").inner_text() == "released"
    assert "staff:ann" in page.locator("#approvals").inner_text() or "ann" in page.locator("#approvals").inner_text()
    console.shot(page, "case-released")
    assert rec.rebuild(new.case(cid)).mnemonic == phone.recovery.mnemonic


def test_support_views_and_cancels_an_inheritance_claim(app_factory, settings_factory, master_key, browser,
                                                        console_factory):
    import datetime as dt
    from client.inheritance import Claimant
    from store.base import utcnow
    from tests.api.inheritance_kit import apply_changes, befriend, device, setup_with_beneficiary
    from tests.api.recovery_kit import account
    isettings = settings_factory(MASTER_KEY=master_key)
    iapp = app_factory(isettings)
    owner, ben, other = device(iapp), device(iapp), device(iapp)
    phone = PhoneWallet()
    aid = account(owner, phone)["account_id"]
    befriend(owner, ben)
    setup_with_beneficiary(owner, ben.device_id, other.device_id, aid, phone, "heir-console@example.org")
    owner.set_plan(aid, [{"device_id": ben.device_id, "label": "Ben"}], 60)
    apply_changes(isettings, aid, utcnow() + dt.timedelta(days=4))
    claim_id = Claimant(ben).start(aid)["claim_id"]
    console = console_factory(iapp, isettings)
    secret = kit.make_staff(isettings, "sue", ["support"])
    page = browser
    console.login(page, "sue", secret)
    page.goto(console.url + "/admin/inheritance")
    assert page.locator(f"tr[data-claim='{claim_id}'] .state").inner_text() == "waiting"
    console.shot(page, "inheritance-queue")
    page.click(f"tr[data-claim='{claim_id}'] a")
    assert page.locator("#claim-state").inner_text() == "waiting"
    assert "inheritance.requested" in page.locator("table").inner_text()
    console.shot(page, "inheritance-claim")
    page.click("#cancel-claim")
    console.confirm(page, "cancel-claim")
    assert "is now cancelled" in page.locator("#result").inner_text()
    page.goto(console.url + f"/admin/inheritance/{claim_id}")
    assert page.locator("#claim-state").inner_text() == "cancelled"
    assert page.locator("#cancel-claim").count() == 0
    assert ben.claim(claim_id)["closed_reason"] == "cancelled_by_staff"
