"""The e-mailed verification page in headless Chromium (issue #17): a spend above the
`verify` threshold waits; the owner opens the mailed Confirm link, sees amount,
destination, fee and account, confirms, and the spend is broadcast; the Cancel link of
another spend cancels it and frees its coins; a used link is refused. The page runs no
script and loads nothing but its own stylesheet (strict CSP)."""
from __future__ import annotations

from client.phone import PhoneWallet
from client.sdk import CustosClient, DeviceKey
from tests.conftest import flask_transport
from tests.api import verification_kit as vk
from tests.api.accounts_kit import create, fund
from tests.api.test_policy import signed_spend, submit


def _local(url: str, console) -> str:
    return console.url + vk.page_path(url)


def test_confirm_and_cancel_through_the_page(chain_app, chain_settings, chain_node, mine, browser, console_factory):
    console = console_factory(chain_app, chain_settings)
    device = CustosClient("http://localhost", DeviceKey.generate(), transport=flask_transport(chain_app))
    device.register()
    phone = PhoneWallet()
    account = create(device, phone, name="savings")
    fund(chain_node, mine, device, account, "0.5")
    fund(chain_node, mine, device, account, "0.5")
    vk.with_email(device, chain_settings, account)
    device.call("PUT", f"/v1/accounts/{account['account_id']}/policy", {"verify": {"above_sat": 100_000}})

    spend, signed = signed_spend(device, phone, account, chain_node, amount=2_000_000)
    assert submit(device, spend, signed)[2]["state"] == "awaiting_verification"
    confirm_url = _local(vk.links(chain_settings)["confirm"], console)
    errors = []
    browser.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    browser.goto(confirm_url)
    assert browser.locator("#title").inner_text() == "Send bitcoin"
    assert browser.locator("#account").inner_text() == "savings"
    table = browser.locator("#summary").inner_text()
    destination = next(o["address"] for o in spend["outputs"] if not o["change"])
    assert "2,000,000 sat" in table and destination in table and f"{spend['fee_sat']:,} sat" in table
    assert browser.locator("#cancel").count() == 0
    console.shot(browser, "confirm-page")
    browser.click("#confirm")
    browser.wait_for_selector("#result")
    assert "sent to the network" in browser.locator("#message").inner_text()
    console.shot(browser, "confirmed")
    got = device.call("GET", f"/v1/spends/{spend['spend_id']}")
    assert got["state"] == "broadcast" and got["txid"] in chain_node.rpc().getrawmempool()
    assert errors == []                                            # nothing blocked by the CSP, no script
    browser.goto(confirm_url)                                      # a used link
    assert "not valid" in browser.locator("#refused").inner_text()

    other, signed = signed_spend(device, phone, account, chain_node, amount=300_000)
    assert submit(device, other, signed)[2]["state"] == "awaiting_verification"
    browser.goto(_local(vk.links(chain_settings)["cancel"], console))
    assert browser.locator("#confirm").count() == 0
    browser.click("#cancel")
    browser.wait_for_selector("#result")
    assert browser.locator("#result").inner_text() == "Cancelled"
    console.shot(browser, "cancelled")
    assert device.call("GET", f"/v1/spends/{other['spend_id']}")["state"] == "cancelled"
    spends = device.call("GET", f"/v1/accounts/{account['account_id']}/spends?state=cancelled")["spends"]
    assert [s["spend_id"] for s in spends] == [other["spend_id"]]
