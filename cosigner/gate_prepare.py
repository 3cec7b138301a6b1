"""The part of the signing gate's inspection that needs no lock: parse and inspect a
submitted PSBT before the account row is locked (`prepare`), so the lock (on SQLite the
database's one writer lock) is held only for what can change.

What `prepare` works out depends only on things that cannot change before the lock, or
that the gate re-reads under the lock and compares (`Prepared.fits`; any difference and
the gate inspects again under the lock, as if nothing had been prepared):

- the spend and its account as `read` (plain values, no lock); the gate loads both rows
  only under the lock, so nothing read here can stand in for them there;
- the PSBT: the request's own bytes (compared);
- the account's keys, descriptors, network and template (compared) and its server key
  (a cosigner key never changes);
- the spend's unsigned txid (fixed when it was built) and the txid it replaces (compared);
- each input's amount, script and account in the chain index: fixed by the outpoint (a
  txid commits to its outputs, a script belongs to one account). That the coins still
  exist and are still this spend's is proved under the lock by submit's strict
  re-reservation (`reservations.keep(strict=True)`, all or nothing); whether they are
  still unspent, by the node when it accepts the transaction;
- whose signature must be on it: prepared for the phone's (`platform`, every spend but a
  recovery or inheritance sweep); the gate reads the role under the lock
  (`hooks.signer_role`) and compares.

Everything else — the spend's state, the policy and its freezes, approvals,
verification, delays, the velocity ledger and the sweep guards — is read and decided
only under the lock, by `cosigner.gate.authorize_and_sign`. Nothing here writes, and
nothing here opens the cosigner key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from embit.psbt import PSBT
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from cosigner import accounts, coincheck
from cosigner.context import CosignerContext
from cosigner.errors import PsbtRejected
from cosigner.model import Account, CosignerKey, Spend
from cosigner.psbt import Intent, inspect, parse


class SeenSpend(NamedTuple):
    """What `prepare` needs of a spend, read without a lock (`read`)."""
    id: str
    account_id: str
    state: str
    unsigned_txid: str
    replaces_id: str | None


class SeenAccount(NamedTuple):
    """What `prepare` needs of an account (its `identity`, and its owner), read without a lock."""
    id: str
    owner_device_id: str
    network: str
    template: str
    server_key_id: str | None
    receive_descriptor: str
    change_descriptor: str
    platform_key: dict
    recovery_key: dict


# plain columns (no Spend or Account instance is built, then refreshed under the lock), and
# the account's CosignerKey row as an instance: a cosigner key never changes, the signer reuses it
_SPEND_COLUMNS = tuple(getattr(Spend, name) for name in SeenSpend._fields)
_ACCOUNT_COLUMNS = tuple(getattr(Account, name) for name in SeenAccount._fields)
_READ = (select(CosignerKey, *_SPEND_COLUMNS, *_ACCOUNT_COLUMNS).select_from(Spend)
         .join(Account, Account.id == Spend.account_id).outerjoin(CosignerKey, CosignerKey.id == Account.server_key_id)
         .where(Spend.id == bindparam("spend")))
_SPLIT = 1 + len(_SPEND_COLUMNS)


def read(session: Session, spend_id: str) -> tuple[SeenSpend, SeenAccount, CosignerKey | None] | None:
    """The spend and its account as they are now, without a lock, for `prepare` and for
    refusing early (a spend that is not the caller's, or not open) — never for deciding:
    the gate loads both rows, once, under the locks (cosigner.gate.lock_spend). One
    query; the CosignerKey row (None when the account has none) is the caller's to hold,
    so inspection's `session.get` of it sends nothing. None when there is no such spend."""
    row = session.execute(_READ, {"spend": spend_id}).first()
    if row is None:
        return None
    return SeenSpend._make(row[1:_SPLIT]), SeenAccount._make(row[_SPLIT:]), row[0]


@dataclass(frozen=True)
class Prepared:
    """An inspection done before the lock, and what it was done against."""
    spend_id: str
    psbt_b64: str
    unsigned_txid: str
    replaced_txid: str | None
    role: str
    account: tuple
    psbt: PSBT
    view: accounts.AccountView
    intent: Intent
    key: CosignerKey

    def fits(self, spend: Spend, account: Account, psbt_b64: str, role: str, replaced_txid: str | None) -> bool:
        """True when the spend, account, PSBT, signer role and replaced txid read under
        the lock are the ones this inspection was done against."""
        return (self.spend_id == spend.id and self.psbt_b64 == psbt_b64 and self.unsigned_txid == spend.unsigned_txid
                and self.replaced_txid == replaced_txid and self.role == role and self.account == identity(account))


def identity(account: Account | SeenAccount) -> tuple:
    """What of an account its inspection depends on."""
    return (account.id, account.network, account.template, account.server_key_id, account.receive_descriptor,
            account.change_descriptor, account.platform_key, account.recovery_key)


def inspected(session: Session, ctx: CosignerContext, spend: Spend | SeenSpend, account: Account | SeenAccount,
              psbt_b64: str, role: str, replaced: Spend | None) -> tuple[PSBT, accounts.AccountView, Intent, CosignerKey]:
    """Parse `psbt_b64`, check every input against the chain index (amounts and scripts;
    spentness is the caller's) and inspect it for `spend` with `role`'s signature
    required. Returns (psbt, view, intent, the account's CosignerKey row, loaded once).
    Raises PsbtRejected (nothing changes)."""
    psbt = parse(psbt_b64)
    key = session.get(CosignerKey, account.server_key_id)     # held: view() and the signer reuse it
    view = accounts.view(account, session)
    coincheck.check_inputs(session, account.id, psbt, replacing=replaced.txid if replaced else None,
                           check_spent=False)
    intent = inspect(psbt, view, caps=ctx.caps, expected_txid=spend.unsigned_txid, signer=role)
    return psbt, view, intent, key


PREPARED_ROLE = "platform"


def prepare(session: Session, ctx: CosignerContext, spend: SeenSpend, account: SeenAccount,
            psbt_b64: str) -> Prepared | None:
    """Inspect `psbt_b64` for `spend` of `account` without any lock (as `read` them), for
    the phone's signature. Returns None when inspection refuses: every refusal
    is decided under the lock, where the gate inspects again with the signer role of
    then. The gate takes a result only when `Prepared.fits` what it reads under the lock.
    Writes nothing."""
    replaced = session.get(Spend, spend.replaces_id) if spend.replaces_id else None
    try:
        psbt, view, intent, key = inspected(session, ctx, spend, account, psbt_b64, PREPARED_ROLE, replaced)
    except PsbtRejected:
        return None
    return Prepared(spend.id, psbt_b64, spend.unsigned_txid, replaced.txid if replaced else None, PREPARED_ROLE,
                    identity(account), psbt, view, intent, key)
