"""Pure recovery code: the case state machine (every legal and illegal transition, the
timed steps with an injected clock), OTP hashing/attempts/cooldown, custody keys and
proofs, SLIP-39 scheme validation and share checks (errors never quote words)."""
from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import traceback
from types import SimpleNamespace

import pytest

from recovery import machine, otp, shares
from recovery.errors import IllegalTransition, InvalidScheme, InvalidShare, TooSoon
from recovery.limits import OTP_MAX_ATTEMPTS, OTP_RESEND_COOLDOWN, OTP_TTL

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
LEGAL = {("requested", "otp_verified"), ("requested", "failed"), ("otp_verified", "collecting"),
         ("collecting", "waiting"), ("waiting", "released"), ("released", "completed")}
LEGAL |= {(s, end) for s in machine.OPEN_STATES for end in ("cancelled", "expired")}


def case(state="requested", **kw):
    base = dict(state=state, history=[], updated_at=T0, closed_reason=None, expires_at=T0 + dt.timedelta(days=30),
                delay_ends_at=None, next_reminder_at=None)
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize("src,dst", list(itertools.product(machine.STATES, machine.STATES)))
def test_every_transition_is_legal_or_refused(src, dst):
    c = case(src)
    if (src, dst) in LEGAL:
        machine.transition(c, dst, T0 + dt.timedelta(hours=1), by="x")
        assert c.state == dst and c.history[-1] == {"from": src, "to": dst, "at": (T0 + dt.timedelta(hours=1)).isoformat(),
                                                    "by": "x"}
    else:
        with pytest.raises(IllegalTransition):
            machine.transition(c, dst, T0)
        assert c.state == src and c.history == []


def test_terminal_states_record_their_reason():
    c = case("waiting")
    machine.transition(c, "cancelled", T0, reason="contested_by_owner")
    assert c.closed_reason == "contested_by_owner" and c.state not in machine.OPEN_STATES


def test_timed_steps_follow_the_injected_clock():
    delay_end = T0 + dt.timedelta(days=7)
    c = case("waiting", delay_ends_at=delay_end, next_reminder_at=T0 + dt.timedelta(days=2))
    assert machine.due_step(c, T0 + dt.timedelta(days=1), False) is None
    assert machine.due_step(c, T0 + dt.timedelta(days=2), False) == "remind"
    assert machine.due_step(c, delay_end - dt.timedelta(seconds=1), False) == "remind"
    assert machine.due_step(c, delay_end, False) == "release"
    assert machine.due_step(c, T0 + dt.timedelta(days=30), False) == "expire"
    assert machine.next_due(c) == T0 + dt.timedelta(days=2)
    collecting = case("collecting", delay_ends_at=delay_end, next_reminder_at=T0 + dt.timedelta(days=2))
    assert machine.due_step(collecting, delay_end, False) == "remind"    # no release without shares
    assert machine.due_step(collecting, T0, True) == "to_waiting"
    assert machine.due_step(case("cancelled"), T0 + dt.timedelta(days=99), True) is None
    assert machine.next_due(case("completed")) is None


# -- OTP ---------------------------------------------------------------------------------
def test_otp_is_six_digits_hashed_with_argon2_and_expires():
    issued = otp.issue(T0)
    assert len(issued.code) == 6 and issued.code.isdigit()
    assert issued.hash.startswith("$argon2id$") and issued.code not in issued.hash
    assert issued.expires_at - issued.sent_at == OTP_TTL == dt.timedelta(minutes=10)
    assert otp.matches(issued.hash, issued.code)
    wrong = f"{(int(issued.code) + 1) % 10**6:06d}"
    assert not otp.matches(issued.hash, wrong)
    for junk in ("12345", "1234567", "abcdef", None, 123456):
        assert not otp.matches(issued.hash, junk)


def test_otp_resend_cooldown_and_attempts():
    with pytest.raises(TooSoon) as info:
        otp.issue(T0 + dt.timedelta(seconds=29), last_sent_at=T0)
    assert 1 <= info.value.details["retry_after"] <= 2
    assert otp.issue(T0 + OTP_RESEND_COOLDOWN, last_sent_at=T0).sent_at == T0 + OTP_RESEND_COOLDOWN
    assert [otp.attempts_left(n) for n in range(7)] == [5, 4, 3, 2, 1, 0, 0] and OTP_MAX_ATTEMPTS == 5


def test_codes_are_uniformly_spread():
    codes = {otp.generate() for _ in range(2000)}
    assert len(codes) > 1990 and any(c.startswith("0") for c in codes)


# -- SLIP-39 and custody -------------------------------------------------------------------
SECRET = bytes(range(16))


def test_scheme_validation():
    ok = shares.parse_scheme({"group_threshold": 1, "groups": [{"threshold": 2, "count": 3}], "identifier": 7,
                              "extendable": True, "iteration_exponent": 1})
    assert ok.groups == ((2, 3),)
    bad = [None, {}, {"group_threshold": 2, "groups": [{"threshold": 2, "count": 3}], "identifier": 1},
           {"group_threshold": 1, "groups": [{"threshold": 4, "count": 3}], "identifier": 1},
           {"group_threshold": 1, "groups": [{"threshold": 1, "count": 3}], "identifier": 1},
           {"group_threshold": 1, "groups": [{"threshold": 2, "count": 3}], "identifier": 1 << 15},
           {"group_threshold": 1, "groups": [{"threshold": 2, "count": 3}], "identifier": 1, "extendable": "y"},
           {"group_threshold": True, "groups": [{"threshold": 2, "count": 3}], "identifier": 1}]
    for raw in bad:
        with pytest.raises(InvalidScheme):
            shares.parse_scheme(raw)


def _scheme_of(groups, gt=1):
    mn = shares.split(SECRET, groups, gt)
    from shamir_mnemonic.share import Share
    s = Share.from_mnemonic(mn[0][0])
    return mn, shares.parse_scheme({"group_threshold": gt, "groups": [{"threshold": t, "count": c} for t, c in groups],
                                    "identifier": s.identifier, "extendable": s.extendable,
                                    "iteration_exponent": s.iteration_exponent})


def test_shares_are_checked_against_the_scheme_and_slot():
    mn, scheme = _scheme_of([(2, 3)])
    shares.check_share(shares.parse_share(mn[0][2]), scheme, 0, 2)
    with pytest.raises(InvalidShare) as slot:
        shares.check_share(shares.parse_share(mn[0][2]), scheme, 0, 1)
    assert slot.value.code == "share_mismatch"
    other, _ = _scheme_of([(2, 3)])
    with pytest.raises(InvalidShare) as ident:
        shares.check_share(shares.parse_share(other[0][2]), scheme, 0, 2)
    assert "identifier" in ident.value.details["fields"]
    big, _ = _scheme_of([(3, 5)])
    with pytest.raises(InvalidShare):
        shares.check_share(shares.parse_share(big[0][0]), scheme, 0, 0)


def test_malformed_share_errors_never_quote_words():
    mn, _ = _scheme_of([(2, 3)])
    words = mn[0][0].split()
    broken = " ".join(words[:-1] + ["academic" if words[-1] != "academic" else "acid"])
    for bad in (broken, " ".join(words[:10]), "not a share at all " * 3):
        with pytest.raises(InvalidShare) as info:
            shares.parse_share(bad)
        _assert_quotes_no_words(info.value, words)
    with pytest.raises(InvalidShare) as info:
        shares.combine([mn[0][0]])
    _assert_quotes_no_words(info.value, words)


def _assert_quotes_no_words(exc: BaseException, words: list[str]) -> None:
    """The error's own data (message, args, chained exceptions) names no word of the input,
    and its formatted traceback — which also holds source lines and paths, where a single
    wordlist word may appear by chance — quotes no two consecutive words of it."""
    data = " ".join([str(exc), repr(exc.args), repr(exc.__context__), repr(exc.__cause__)]).lower()
    assert not [w for w in words if re.search(rf"\b{re.escape(w.lower())}\b", data)]
    text = "".join(traceback.format_exception(exc)).lower()
    assert not [pair for pair in zip(words, words[1:]) if f"{pair[0]} {pair[1]}".lower() in text]


def test_combine_round_trip_and_group_scheme():
    mn, _ = _scheme_of([(2, 3)])
    assert shares.combine([mn[0][0], mn[0][2]]) == SECRET
    groups, scheme = _scheme_of([(2, 3), (1, 1)], gt=2)
    assert shares.combine([groups[0][1], groups[0][2], groups[1][0]]) == SECRET
    assert shares.recoverable(scheme, {(0, 1), (0, 2), (1, 0)})
    assert not shares.recoverable(scheme, {(0, 0), (0, 1), (0, 2)})
    with pytest.raises(TypeError):
        shares.combine([mn[0][0], mn[0][1]], passphrase="text")


def test_custody_key_derivation_and_proof():
    mn, _ = _scheme_of([(2, 3)])
    pub = shares.custody_public_key(mn[0][1])
    assert len(pub) == 32 and pub == shares.custody_public_key("  " + mn[0][1].upper() + " ")
    assert pub != shares.custody_public_key(mn[0][0])
    challenge = os.urandom(32)
    sig = shares.custody_private_key(mn[0][1]).sign(shares.custody_message("rhold_1", challenge))
    assert shares.verify_custody(pub, "rhold_1", challenge, sig)
    assert not shares.verify_custody(pub, "rhold_2", challenge, sig)          # bound to the slot
    assert not shares.verify_custody(pub, "rhold_1", os.urandom(32), sig)     # and to the challenge
    assert not shares.verify_custody(shares.custody_public_key(mn[0][0]), "rhold_1", challenge, sig)
    # the reference client derives the same key without the server's code
    from client.recovery import custody_public
    import base64
    assert base64.b64decode(custody_public(mn[0][1])) == pub


def test_custody_status_levels():
    _, scheme = _scheme_of([(2, 3)])
    assert shares.custody_status(scheme, {(0, 0), (0, 1), (0, 2)}) == "nominal"
    assert shares.custody_status(scheme, {(0, 0), (0, 2)}) == "critical"
    assert shares.custody_status(scheme, {(0, 2)}) == "at_risk"
    _, five = _scheme_of([(3, 5)])
    assert shares.custody_status(five, {(0, i) for i in range(4)}) == "nominal"
    assert shares.custody_status(five, {(0, i) for i in range(3)}) == "critical"


def test_completion_proof_by_the_recovery_key_path():
    from client.phone import PhoneWallet
    from client.recovery import Recoverer
    from recovery.errors import ProofInvalid
    from recovery.secrets_box import verify_completion
    import base64
    phone = PhoneWallet()
    case_doc = {"case_id": "rcase_x", "challenge": base64.b64encode(b"c" * 32).decode()}
    sig = bytes.fromhex(Recoverer.completion_signature(phone.recovery, case_doc))
    xpub = phone.recovery.account_key()["xpub"]
    verify_completion(xpub, "rcase_x", b"c" * 32, sig)
    for args in ((xpub, "rcase_y", b"c" * 32, sig), (xpub, "rcase_x", b"d" * 32, sig),
                 (PhoneWallet().recovery.account_key()["xpub"], "rcase_x", b"c" * 32, sig),
                 (xpub, "rcase_x", b"c" * 32, b"\x30junk")):
        with pytest.raises(ProofInvalid):
            verify_completion(*args)
