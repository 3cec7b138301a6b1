"""Inspection against the chain index: every input of a PSBT must be a coin Custos
knows for this account, with the amount and script the PSBT claims, so policy and fee
caps always judge true numbers (a `witness_utxo` cannot understate or overstate an
amount, whatever `non_witness_utxo` says or omits).

Refusals (PsbtRejected, 422): `foreign_input` (not an indexed coin of the account, or
its script / derivation differs), `input_amount_mismatch` (details: input, claimed_sat,
indexed_sat), `input_spent` (already spent by a transaction other than the one being
replaced).
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from cosigner import reservations
from cosigner.errors import PsbtRejected


def check_inputs(session: Session, account_id: str, psbt, intent, *, replacing: str | None = None,
                 check_spent: bool = True) -> None:
    """Raise PsbtRejected unless every input matches the index. `replacing`: the txid an
    RBF replacement replaces (its inputs may be spent by that unconfirmed transaction).
    `check_spent=False` leaves spentness to the caller (the gate asks the node)."""
    coins = reservations.lookup(session, [(i.txid, i.vout) for i in intent.inputs])
    for n, (info, scope) in enumerate(zip(intent.inputs, psbt.inputs)):
        coin = coins.get((info.txid, info.vout))
        if coin is None or coin.account_id != account_id:
            raise PsbtRejected(f"input {n} is not a coin of this account", code="foreign_input",
                               details={"input": n})
        if bytes(coin.script) != scope.witness_utxo.script_pubkey.data or \
                (coin.branch % 2, coin.index) != (info.branch, info.index):
            raise PsbtRejected(f"input {n}: script or derivation differs from the account's coin",
                               code="foreign_input", details={"input": n})
        if coin.amount_sat != info.amount_sat:
            raise PsbtRejected(f"input {n} claims {info.amount_sat} sat; the coin holds {coin.amount_sat}",
                               code="input_amount_mismatch",
                               details={"input": n, "claimed_sat": info.amount_sat, "indexed_sat": coin.amount_sat})
        if check_spent and coin.spent_by_txid is not None and not (coin.spent_by_txid == replacing and coin.spent_height is None):
            raise PsbtRejected(f"input {n} is already spent", code="input_spent",
                               details={"input": n, "spent_by": coin.spent_by_txid})
