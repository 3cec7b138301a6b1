"""Recovery setup: register an account's SLIP-39 scheme, the operator's share (sealed at
rest), the holders and their custody keys, and the OTP email. Replacing a setup in force
is a privileged action that waits (recovery.setup_changes)."""
from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner.model import Account
from cosigner.vault import SealedSecret, open_secret, seal
from devices.model import Device
from recovery import shares
from recovery.context import RecoveryContext
from recovery.errors import InvalidScheme, NotConfigured
from recovery.limits import MAX_HOLDERS

HOLDER_ROLES = ("holder", "beneficiary")   # a beneficiary may be named in the inheritance plan (issue #18)
from recovery.model import RecoveryHolder, RecoverySetup
from recovery.secrets_box import email_hash, normalize_email


def _b64key(value, where: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidScheme(f"{where} must be a base64 Ed25519 public key (32 bytes)", code="invalid_holder")
    return raw


def _holders(raw, scheme: shares.Scheme, owner_id: str) -> list[dict]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_HOLDERS:
        raise InvalidScheme(f"holders must be a list of 1..{MAX_HOLDERS} entries", code="invalid_holder")
    out, slots, operators = [], set(), 0
    for i, h in enumerate(raw):
        where = f"holders[{i}]"
        if not isinstance(h, dict) or h.get("kind") not in ("operator", "device"):
            raise InvalidScheme(f"{where}.kind must be operator or device", code="invalid_holder")
        g, m = h.get("group_index"), h.get("member_index")
        if not isinstance(g, int) or isinstance(g, bool) or not 0 <= g < len(scheme.groups):
            raise InvalidScheme(f"{where}.group_index is outside the scheme", code="invalid_holder")
        if not isinstance(m, int) or isinstance(m, bool) or not 0 <= m < scheme.groups[g][1]:
            raise InvalidScheme(f"{where}.member_index is outside its group", code="invalid_holder")
        if (g, m) in slots:
            raise InvalidScheme(f"{where}: two holders for one share", code="invalid_holder")
        slots.add((g, m))
        device_id = h.get("device_id")
        if h["kind"] == "operator":
            operators += 1
            if operators > 1:
                raise InvalidScheme("only one share may be the operator's", code="second_operator_share")
            device_id = None
        elif not isinstance(device_id, str) or not 0 < len(device_id) <= 40:
            raise InvalidScheme(f"{where}.device_id is required for a device holder", code="invalid_holder")
        label = h.get("label")
        if label is not None and (not isinstance(label, str) or len(label) > 64):
            raise InvalidScheme(f"{where}.label must be at most 64 characters", code="invalid_holder")
        role = h.get("role", "holder")
        if role not in HOLDER_ROLES or (role == "beneficiary" and h["kind"] != "device"):
            raise InvalidScheme(f"{where}.role must be one of {', '.join(HOLDER_ROLES)} (beneficiary: a device)",
                                code="invalid_holder")
        out.append({"kind": h["kind"], "device_id": device_id, "label": label, "role": role,
                    "group_index": g, "member_index": m,
                    "custody_public_key": _b64key(h.get("custody_public_key"), f"{where}.custody_public_key")})
    if operators != 1:
        raise InvalidScheme("exactly one holder must be the operator", code="operator_holder_missing")
    if not shares.recoverable(scheme, slots):
        raise InvalidScheme("the registered holders cannot reach the scheme's thresholds", code="invalid_holder")
    return out


@dataclass(frozen=True)
class Requested:
    """A validated setup request (secret: it holds the operator's share and the e-mail)."""
    scheme: shares.Scheme
    holders: list[dict]
    share: str
    email: str


def validate(session: Session, account: Account, body: dict) -> Requested:
    """Check a setup request against the state of now (holder devices known and not
    revoked). Raises InvalidScheme / InvalidShare with a code; reads only."""
    scheme = shares.parse_scheme(body.get("scheme"))
    holders = _holders(body.get("holders"), scheme, account.owner_device_id)
    operator = next(h for h in holders if h["kind"] == "operator")
    if isinstance(body.get("operator_shares"), list):
        raise InvalidScheme("only one operator share may be uploaded", code="second_operator_share")
    share = body.get("operator_share")
    info = shares.parse_share(share)
    shares.check_share(info, scheme, operator["group_index"], operator["member_index"])
    if shares.custody_public_key(share) != operator["custody_public_key"]:
        raise InvalidScheme("the operator's custody key is not the one its share derives", code="custody_key_mismatch")
    email = normalize_email(body.get("email"))
    if email is None:
        raise InvalidScheme("email must be an email address", code="invalid_email")
    device_ids = {h["device_id"] for h in holders if h["device_id"]}
    known = set(session.scalars(select(Device.id).where(Device.id.in_(device_ids), Device.revoked_at.is_(None))))
    if known != device_ids:
        raise InvalidScheme("a holder device is unknown or revoked", code="invalid_holder",
                            details={"unknown": sorted(device_ids - known)})
    return Requested(scheme, holders, shares.normalize(share), email)


def put(session: Session, ctx: RecoveryContext, account: Account, body: dict, *, actor: str,
        now: dt.datetime, cosigner=None):
    """Register the account's first recovery setup (at once, `recovery.setup_first`), or
    ask to replace the one in force (`recovery.replace_setup`: a pending change that waits
    the loosening delay and, with a verification channel, the owner's second channel —
    recovery.setup_changes). Validates everything first (InvalidScheme / InvalidShare:
    nothing stored); a replacement asked while a verified recovery case is open is refused
    (CaseStateError `recovery_in_progress`). `cosigner` is the cosigner context (the
    out-of-band request needs it). Returns (setup in force, pending change or None)."""
    requested = validate(session, account, body)
    session.get(Account, account.id, with_for_update=True)
    existing = session.scalar(select(RecoverySetup).where(RecoverySetup.account_id == account.id)
                              .order_by(RecoverySetup.created_at.desc()).limit(1))
    if existing is None:
        from verification.privileged import rule
        first = rule("recovery.setup_first")      # nothing to protect yet
        assert not (first.delay or first.oob), "a first setup that waits needs a pending change"
        return store(session, ctx, account, requested, actor=actor, now=now), None
    _refuse_if_verified_case(session, account.id)
    from recovery.setup_changes import propose
    return existing, propose(session, ctx, cosigner, account, existing, requested, actor=actor, now=now)


def store(session: Session, ctx: RecoveryContext, account: Account, requested: Requested, *, actor: str,
          now: dt.datetime) -> RecoverySetup:
    """Store `requested` as the account's setup and delete the old one, in the caller's
    transaction under the account's row lock (the old operator share goes only once the
    new one is stored). Unverified open cases are cancelled; a verified one refuses
    (CaseStateError `recovery_in_progress`, nothing changed)."""
    scheme, holders, email = requested.scheme, requested.holders, requested.email
    session.get(Account, account.id, with_for_update=True)
    _close_cases_for_replacement(session, account.id, actor, now)
    old_ids = list(session.scalars(select(RecoverySetup.id).where(RecoverySetup.account_id == account.id)))
    setup_id = "rset_" + secrets.token_hex(12)
    sealed_share = seal(ctx.keyring, requested.share.encode(), setup_id)
    sealed_email = seal(ctx.keyring, email.encode(), setup_id + ":email")
    setup = RecoverySetup(id=setup_id, account_id=account.id, scheme=scheme.as_dict(),
                          email_hash=email_hash(ctx.email_key, email), email_kek_id=sealed_email.kek_id,
                          email_wrapped_dek=sealed_email.wrapped_dek, email_ciphertext=sealed_email.ciphertext,
                          share_kek_id=sealed_share.kek_id, share_wrapped_dek=sealed_share.wrapped_dek,
                          share_ciphertext=sealed_share.ciphertext, custody_status="at_risk", created_at=now)
    session.add(setup)
    session.flush()
    for h in holders:
        session.add(RecoveryHolder(id="rhold_" + secrets.token_hex(12), setup_id=setup_id,
                                   proven_at=now if h["kind"] == "operator" else None, **h))
    session.flush()
    if old_ids:
        session.execute(delete(RecoveryHolder).where(RecoveryHolder.setup_id.in_(old_ids)))
        session.execute(delete(RecoverySetup).where(RecoverySetup.id.in_(old_ids)))
    from recovery.custody import refresh_status
    refresh_status(session, setup, now, notify_owner=False)
    audit.record(session, actor=actor, action="recovery.setup" if not old_ids else "recovery.setup_replaced",
                 subject=account.id, details={"setup": setup_id, "holders": len(holders),
                                              "groups": [g["threshold"] for g in scheme.as_dict()["groups"]],
                                              "group_threshold": scheme.group_threshold}, now=now)
    return setup


def _refuse_if_verified_case(session: Session, account_id: str) -> None:
    from recovery import machine
    from recovery.model import RecoveryCase
    _raise_in_progress(list(session.scalars(select(RecoveryCase.id).where(
        RecoveryCase.account_id == account_id, RecoveryCase.state.in_(machine.OPEN_STATES),
        RecoveryCase.state != "requested").order_by(RecoveryCase.created_at))))


def _raise_in_progress(verified: list[str]) -> None:
    """A case verified by OTP or staff is the owner's to contest first."""
    from recovery.errors import CaseStateError
    if verified:
        raise CaseStateError("a recovery is in progress for this account: contest it before replacing the setup",
                             code="recovery_in_progress", details={"cases": verified})


def _close_cases_for_replacement(session: Session, account_id: str, actor: str, now: dt.datetime) -> None:
    """A case verified by OTP or staff is the owner's to contest first: refuse with
    `recovery_in_progress` naming the cases (DELETE /v1/recoveries/{id}, then replace).
    A case not yet verified (anyone who knows the email can open one) would otherwise
    block the owner for the case's lifetime: it is cancelled (`setup_replaced`), its
    requester told. Runs under the account's row lock."""
    from recovery import machine
    from recovery.cases import _move
    from recovery.model import RecoveryCase
    from recovery.notices import push
    open_cases = list(session.scalars(select(RecoveryCase).where(
        RecoveryCase.account_id == account_id, RecoveryCase.state.in_(machine.OPEN_STATES))
        .order_by(RecoveryCase.created_at).with_for_update()))
    _raise_in_progress([c.id for c in open_cases if c.state != "requested"])
    for case in open_cases:
        case.otp_hash = None
        _move(session, case, "cancelled", now, by=actor, reason="setup_replaced")
        push(session, case.requester_device_id, "recovery_cancelled", now)


def current(session: Session, account_id: str) -> RecoverySetup:
    setup = session.scalar(select(RecoverySetup).where(RecoverySetup.account_id == account_id)
                           .order_by(RecoverySetup.created_at.desc()).limit(1))
    if setup is None:
        raise NotConfigured("this account has no recovery setup")
    return setup


def holders(session: Session, setup_id: str) -> list[RecoveryHolder]:
    return list(session.scalars(select(RecoveryHolder).where(RecoveryHolder.setup_id == setup_id)
                                .order_by(RecoveryHolder.group_index, RecoveryHolder.member_index)))


def operator_share(ctx: RecoveryContext, setup: RecoverySetup) -> bytes:
    """The operator's share, decrypted (the caller seals it again at once)."""
    return open_secret(ctx.keyring, SealedSecret(setup.share_kek_id, setup.share_wrapped_dek, setup.share_ciphertext),
                       setup.id)


def scheme(setup: RecoverySetup) -> shares.Scheme:
    return shares.parse_scheme(setup.scheme)


def last_activity(setup: RecoverySetup) -> dt.datetime:
    return setup.created_at
