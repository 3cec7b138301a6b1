"""The part of the signing gate's inspection that needs no lock: parse and inspect a
submitted PSBT before the account row is locked (`prepare`), so the lock (on SQLite the
database's one writer lock) is held only for what can change.

What `prepare` works out depends only on things that cannot change before the lock, or
that the gate re-reads under the lock and compares (`Prepared.fits`; any difference and
the gate inspects again under the lock, as if nothing had been prepared):

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

from embit.psbt import PSBT
from sqlalchemy.orm import Session

from cosigner import accounts, coincheck
from cosigner.context import CosignerContext
from cosigner.errors import PsbtRejected
from cosigner.model import Account, CosignerKey, Spend
from cosigner.psbt import Intent, inspect, parse


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


def identity(account: Account) -> tuple:
    """What of an account its inspection depends on."""
    return (account.id, account.network, account.template, account.server_key_id, account.receive_descriptor,
            account.change_descriptor, account.platform_key, account.recovery_key)


def inspected(session: Session, ctx: CosignerContext, spend: Spend, account: Account, psbt_b64: str, role: str,
              replaced: Spend | None) -> tuple[PSBT, accounts.AccountView, Intent, CosignerKey]:
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


def prepare(session: Session, ctx: CosignerContext, spend: Spend, account: Account,
            psbt_b64: str) -> Prepared | None:
    """Inspect `psbt_b64` for `spend` of `account` without any lock (rows as read so
    far), for the phone's signature. Returns None when inspection refuses: every refusal
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
