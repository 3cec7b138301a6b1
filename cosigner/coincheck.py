"""Inspection against the chain index: every input of a PSBT must be a coin Custos
knows for this account, with the amount and script the PSBT claims, so policy and fee
caps always judge true numbers (a `witness_utxo` cannot understate or overstate an
amount, whatever `non_witness_utxo` says or omits).

Refusals (PsbtRejected, 422): `foreign_input` (not an indexed coin of the account, or
its script differs), `input_amount_unknown` (no witness_utxo), `input_amount_mismatch` (details: input, claimed_sat,
indexed_sat), `input_spent` (already spent by a transaction other than the one being
replaced).
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from chain import coins as chain_coins
from cosigner.errors import PsbtRejected


def check_inputs(session: Session, account_id: str, psbt, *, replacing: str | None = None,
                 check_spent: bool = True) -> None:
    """Raise PsbtRejected unless every input of the parsed `psbt` is an indexed coin of
    the account whose amount and script its `witness_utxo` states exactly. Run before
    inspection, so fees and policy are only ever computed from true amounts (inspection
    then proves the script re-derives at the claimed path, which pins the derivation).
    `replacing`: the txid an RBF replacement replaces (its inputs may be spent by that
    unconfirmed transaction). `check_spent=False` leaves spentness to the caller (the
    gate asks the node)."""
    outpoints = [(scope.vin.txid.hex(), scope.vin.vout) for scope in psbt.inputs]
    coins = chain_coins.read(session, outpoints)
    for n, (outpoint, scope) in enumerate(zip(outpoints, psbt.inputs)):
        coin = coins.get(outpoint)
        if coin is None or coin.account_id != account_id:
            raise PsbtRejected(f"input {n} is not a coin of this account", code="foreign_input",
                               details={"input": n})
        utxo = scope.witness_utxo
        if utxo is None:
            raise PsbtRejected(f"input {n} has no witness_utxo: amount unknown", code="input_amount_unknown")
        if bytes(coin.script) != utxo.script_pubkey.data:
            raise PsbtRejected(f"input {n}: its script is not the account's coin's", code="foreign_input",
                               details={"input": n})
        if coin.amount_sat != utxo.value:
            raise PsbtRejected(f"input {n} claims {utxo.value} sat; the coin holds {coin.amount_sat}",
                               code="input_amount_mismatch",
                               details={"input": n, "claimed_sat": utxo.value, "indexed_sat": coin.amount_sat})
        if check_spent and coin.spent_by_txid is not None and \
                not (coin.spent_by_txid == replacing and coin.spent_height is None):
            raise PsbtRejected(f"input {n} is already spent", code="input_spent",
                               details={"input": n, "spent_by": coin.spent_by_txid})
