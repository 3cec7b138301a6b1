"""Shared steps for the out-of-band verification tests (API, browser, e2e): register
and confirm channels, read the mailed codes and links from the outbox, fresh TOTP codes."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pyotp

from store.session import session_scope

EMAIL = "owner@example.com"


def mails(settings, address: str = EMAIL, kind: str | None = None):
    from cosigner.vault import keyring_from_settings
    from recovery.mailer import read_outbox
    from recovery.secrets_box import email_hash, email_key
    with session_scope(settings.database_url) as s:
        return read_outbox(s, keyring_from_settings(settings), email_hash(email_key(settings.secret_key), address),
                           kind)


def with_email(device, settings, account, address: str = EMAIL) -> dict:
    aid = account["account_id"]
    device.call("POST", f"/v1/accounts/{aid}/verification/email", {"email": address})
    code = re.search(r"is (\d{6})", mails(settings, address, "verification.email_code")[-1].body).group(1)
    return device.call("POST", f"/v1/accounts/{aid}/verification/email/confirm", {"code": code})


def with_totp(device, account) -> pyotp.TOTP:
    aid = account["account_id"]
    enrolled = device.call("POST", f"/v1/accounts/{aid}/verification/totp")
    totp = pyotp.parse_uri(enrolled["otpauth_uri"])
    from tests.totp_steps import fresh
    first = fresh(totp, 0)           # the oldest step still good for 15 s: leaves the others for the test
    device.call("POST", f"/v1/accounts/{aid}/verification/totp/confirm", {"code": first})
    return totp


def totp_code(settings, account_id: str, totp: pyotp.TOTP) -> str:
    """A code for a step later than the channel's last used one (tests/totp_steps.py)."""
    from verification.model import VerificationChannel
    with session_scope(settings.database_url) as s:
        last = max(c.last_totp_step for c in s.query(VerificationChannel).filter_by(account_id=account_id,
                                                                                     kind="totp", state="active"))
    from tests.totp_steps import fresh
    return fresh(totp, last)


def links(settings, address: str = EMAIL) -> dict:
    """{"confirm": url, "cancel": url} of the newest verification mail."""
    body = mails(settings, address, "verification.request")[-1].body
    return {"confirm": re.search(r"Confirm: (\S+)", body).group(1), "cancel": re.search(r"Cancel:\s+(\S+)", body).group(1)}


def query(url: str) -> dict:
    q = parse_qs(urlsplit(url).query)
    return {"view_token": q["view_token"][0], "token": q["token"][0]}


def page_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)


def activate_waiting(device, settings, account, totp: pyotp.TOTP) -> None:
    """Confirm the account's pending channel change with a TOTP code and let its delay
    pass (the due jobs run with a clock past it)."""
    import datetime as dt
    from tests.api.test_policy import run_due_jobs
    aid = account["account_id"]
    status = device.call("GET", f"/v1/accounts/{aid}/verification")
    req = next(r for r in status["pending"] if r["subject_kind"] == "channel")
    device.call("POST", f"/v1/verifications/{req['request_id']}", {"code": totp_code(settings, aid, totp)})
    due = max(dt.datetime.fromisoformat(c["effective_at"]) for c in status["channels"] if c["state"] == "waiting")
    run_due_jobs(settings, due + dt.timedelta(seconds=1))
