"""PSBTs built by the server: every field a signer needs (checked with embit), signed by
two keys, finalized, accepted by Bitcoin Core's interpreter (libbitcoinkernel), and a
fee that is the requested rate within 1 sat/vB of the real signed size."""
from __future__ import annotations

import hashlib

import pytest
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from cosigner import build, coinselect as cs, vsize as vs
from cosigner.finalize import finalize
from cosigner.psbt import FeeCaps, inspect, parse
from tests.unit.cosigner_kit import FOREIGN_ADDR, H, Account
from tests.unit.test_cosigner_psbt import kernel_ok

FOREIGN_SPK = Script.from_address(FOREIGN_ADDR).data


def make_coins(a: Account, amounts, branch=0):
    out = []
    for n, amount in enumerate(amounts):
        spk = a.spk(branch, n).data
        prev = Transaction(version=2, vin=[TransactionInput(hashlib.sha256(b"p%d%d" % (branch, n)).digest(), 1)],
                           vout=[TransactionOutput(7_777, Script(b"\x00\x14" + bytes(20))),
                                 TransactionOutput(amount, Script(spk))])
        out.append(build.Coin(prev.txid().hex(), 1, amount, spk, branch, n, prev.serialize()))
    return out


def signed_size(raw: bytes) -> int:
    tx = Transaction.parse(raw)
    stripped = Transaction(version=tx.version, vin=[TransactionInput(v.txid, v.vout, sequence=v.sequence)
                                                    for v in tx.vin], vout=tx.vout, locktime=tx.locktime)
    return vs.vsize(3 * len(stripped.serialize()) + len(raw))


def spend(a: Account, amounts, pay, rate, *, sffo=(), outputs=None):
    coins = make_coins(a, amounts)
    w = build.coin_weight(a.view)
    outputs = outputs or [(FOREIGN_SPK, pay)]
    t = cs.Target(tuple(v for _, v in outputs), tuple(len(s) for s, _ in outputs), vs.rate_to_kvb(rate),
                  change_input_weight=w, subtract_fee_from=tuple(sffo))
    sel = cs.select([cs.Candidate(c.amount_sat, w, c) for c in coins], t)
    psbt = build.build_psbt(a.view, [c.ref for c in sel.inputs],
                            [(s, v) for (s, _), v in zip(outputs, sel.amounts)],
                            change=(4, sel.change) if sel.change else None, change_position=0, locktime=321)
    return sel, psbt


@pytest.mark.parametrize("template,decay", [("2of3", None), ("2of3_decaying", 52_560)])
def test_psbt_fields_for_a_signer(template, decay):
    a = Account(template, decay, label=f"build-{template}")
    sel, psbt = spend(a, [60_000, 50_000, 5_000], 90_000, 4.0)
    psbt = parse(psbt.to_string())                      # what the phone receives
    assert psbt.tx.version == 2 and psbt.tx.locktime == 321
    assert {str(k) for k in psbt.xpubs} == {k.xpub for k in a.keys}
    for inp, c in zip(psbt.inputs, sel.inputs):
        coin = c.ref
        assert inp.vin.sequence == build.SEQUENCE_RBF
        assert inp.witness_utxo.value == coin.amount_sat and inp.witness_utxo.script_pubkey.data == coin.script
        assert inp.non_witness_utxo.txid() == inp.vin.txid
        assert inp.non_witness_utxo.vout[inp.vin.vout].value == coin.amount_sat
        assert inp.witness_script == a.view.receive.derive(coin.index).witness_script()
        paths = {(d.fingerprint.hex(), tuple(d.derivation)) for d in inp.bip32_derivations.values()}
        want = {(k.fingerprint, tuple(int(p[:-1]) + H for p in k.path.split("/")) + (0, coin.index)) for k in a.keys}
        if template == "2of3_decaying":
            rec = a.keys[1]
            want.add((rec.fingerprint, tuple(int(p[:-1]) + H for p in rec.path.split("/")) + (2, coin.index)))
        assert paths == want
    change = psbt.outputs[0]
    assert change.value == sel.change and change.witness_script == a.view.change.derive(4).witness_script()
    assert a.view.change.owns(change)                  # embit proves the change is the account's
    assert len(change.bip32_derivations) == len(psbt.inputs[0].bip32_derivations)
    assert not psbt.outputs[1].bip32_derivations
    # the server's own inspection understands it the same way
    intent = inspect(psbt, a.view, caps=FeeCaps(), require_platform_signature=False)
    assert intent.fee_sat == sel.fee and intent.vsize == sel.vsize
    assert [o.change for o in intent.outputs] == [True, False]


@pytest.mark.parametrize("template,decay", [("2of3", None), ("2of3_decaying", 52_560)])
@pytest.mark.parametrize("rate", [1.0, 2.7, 12.0, 151.3])
@pytest.mark.parametrize("n_inputs", [1, 3, 8])
def test_fee_rate_holds_on_the_signed_transaction(template, decay, rate, n_inputs):
    a = Account(template, decay, label=f"fee-{template}")
    amounts = [400_000 + 1_000 * n for n in range(n_inputs)]
    pay = sum(amounts) - 200_000                      # needs every coin, leaves change
    sel, psbt = spend(a, amounts, pay, rate)
    assert sel.change and len(sel.inputs) == n_inputs
    assert psbt.sign_with(a.platform) == n_inputs and psbt.sign_with(a.server) == n_inputs
    intent = inspect(parse(psbt.to_string()), a.view, caps=FeeCaps())
    raw = finalize(psbt, intent.inputs, a.view)
    assert kernel_ok(raw, [(c.ref.script, c.ref.amount_sat) for c in sel.inputs])
    actual = signed_size(raw)
    assert actual <= sel.vsize                        # never an underestimate
    assert rate <= sel.fee / actual < rate + 1        # the requested rate, within 1 sat/vB
    assert sel.vsize - actual <= n_inputs             # at most 2 bytes of witness per input (high-R allowance)


def test_sweep_with_subtract_fee_pays_the_rate_on_the_signed_size():
    a = Account(label="sweep")
    coins = make_coins(a, [10_000, 25_000, 33_000, 41_000])
    w = build.coin_weight(a.view)
    t = cs.Target((sum(c.amount_sat for c in coins),), (len(FOREIGN_SPK),), vs.rate_to_kvb(3.0),
                  change_input_weight=w, subtract_fee_from=(0,))
    sel = cs.select([cs.Candidate(c.amount_sat, w, c) for c in coins], t, use_all=True)
    psbt = build.build_psbt(a.view, [c.ref for c in sel.inputs], [(FOREIGN_SPK, sel.amounts[0])])
    psbt.sign_with(a.recovery), psbt.sign_with(a.server)
    intent = inspect(parse(psbt.to_string()), a.view, caps=FeeCaps(), signer="recovery")
    raw = finalize(psbt, intent.inputs, a.view)
    actual = signed_size(raw)
    assert intent.fee_sat == sel.fee and sel.amounts[0] + sel.fee == 109_000
    assert 3.0 <= sel.fee / actual < 4.0


def test_timelock_path_vsize_is_exact():
    a = Account("2of3_decaying", 144, label="tl")
    psbt = a.psbt(sequence=144)
    rec_path = [int(p[:-1]) + H for p in a.keys[1].path.split("/")] + [2, 0]
    from embit.psbt import DerivationPath
    psbt.inputs[0].bip32_derivations[a.recovery.derive(rec_path).to_public().key] = \
        DerivationPath(a.recovery.my_fingerprint, rec_path)
    psbt.sign_with(a.recovery)
    intent = inspect(parse(psbt.to_string()), a.view, caps=FeeCaps(), require_platform_signature=False)
    raw = finalize(psbt, intent.inputs, a.view, recovery_path=True)
    spk_lens = [len(o.script_pubkey.data) for o in psbt.tx.vout]
    est = vs.vsize(vs.tx_weight([vs.input_weight(build.witness_script_len(a.view), "timelock")], spk_lens))
    assert 0 <= est - signed_size(raw) <= 1


def test_a_coin_that_is_not_the_accounts_is_not_built():
    a, other = Account(label="b1"), Account(label="b2")
    [coin] = make_coins(other, [10_000])
    with pytest.raises(build.BuildError):
        build.build_psbt(a.view, [coin], [(FOREIGN_SPK, 5_000)])
    [mine] = make_coins(a, [10_000])
    lying = build.Coin(mine.txid, mine.vout, 20_000, mine.script, 0, 0, mine.prev_tx)
    with pytest.raises(build.BuildError):
        build.build_psbt(a.view, [lying], [(FOREIGN_SPK, 5_000)])


def test_not_replaceable_uses_a_final_sequence_that_keeps_locktime():
    a = Account(label="nr")
    coins = make_coins(a, [10_000])
    psbt = build.build_psbt(a.view, coins, [(FOREIGN_SPK, 5_000)], replaceable=False, locktime=99)
    assert psbt.tx.vin[0].sequence == 0xFFFFFFFE and psbt.tx.locktime == 99
