"""PSBT inspection refuses every way a PSBT can lie; the finalizer's witnesses pass
Bitcoin Core's script interpreter (libbitcoinkernel)."""
from __future__ import annotations

import pbk
import pytest
from embit.psbt import PSBT, DerivationPath

from embit.transaction import SIGHASH, Transaction, TransactionOutput
from pbk.script import PrecomputedTransactionData

from cosigner.errors import PsbtRejected
from cosigner.finalize import finalize
from cosigner.psbt import FeeCaps, inspect, parse
from tests.unit.cosigner_kit import FOREIGN_ADDR, H, Account, seeded_root

CAPS = FeeCaps()


def roundtrip(psbt: PSBT) -> PSBT:
    return parse(psbt.to_string())


def rejected(psbt, account, code, **kw):
    with pytest.raises(PsbtRejected) as info:
        inspect(roundtrip(psbt), account.view, caps=kw.pop("caps", CAPS), **kw)
    assert info.value.code == code, info.value
    return info.value


@pytest.fixture(scope="module")
def acct():
    return Account()


def test_honest_psbt_is_understood(acct):
    psbt = acct.psbt()
    psbt.sign_with(acct.platform)
    intent = inspect(roundtrip(psbt), acct.view, caps=CAPS)
    assert intent.fee_sat == 1_000
    assert [o.change for o in intent.outputs] == [False, True]
    assert intent.outputs[0].address == FOREIGN_ADDR and intent.outputs[1].change_index == 3
    assert intent.external_sat == 50_000 and intent.change_sat == 49_000
    assert intent.inputs[0].amount_sat == 100_000 and (intent.inputs[0].branch, intent.inputs[0].index) == (0, 0)
    assert 190 < intent.vsize < 210 and intent.fee_rate == pytest.approx(1_000 / intent.vsize, rel=1e-3)


def test_change_to_a_foreign_address_with_a_fake_path_is_refused(acct):
    psbt = acct.psbt(change=None, outputs=((FOREIGN_ADDR, 50_000), (FOREIGN_ADDR, 49_000)))
    psbt.outputs[1].bip32_derivations = acct.derivations(1, 3)  # claims to be our change
    psbt.sign_with(acct.platform)
    rejected(psbt, acct, "change_not_ours")


def test_change_on_the_receive_branch_is_not_change(acct):
    psbt = acct.psbt(change=(0, 4, 49_000))
    psbt.sign_with(acct.platform)
    rejected(psbt, acct, "change_not_ours")


def test_input_from_another_wallet_is_refused(acct):
    other = Account(label="other")
    psbt = acct.psbt(inputs=((0, 0, 100_000), (0, 1, 10_000)))
    src = other.view.receive.derive(1)
    psbt.inputs[1].witness_utxo = TransactionOutput(10_000, src.script_pubkey())
    psbt.inputs[1].witness_script = src.witness_script()
    psbt.sign_with(acct.platform)
    rejected(psbt, acct, "foreign_input")


def test_input_without_our_derivations_is_refused(acct):
    psbt = acct.psbt()
    psbt.inputs[0].bip32_derivations = {}
    rejected(psbt, acct, "foreign_input")


def test_fee_inflated_by_lowered_witness_utxo_amount_is_caught_by_non_witness_utxo(acct):
    psbt = acct.psbt()
    from embit.transaction import TransactionInput
    prev = Transaction(version=2, vin=[TransactionInput(b"\x11" * 32, 0)],
                       vout=[TransactionOutput(100_000, acct.spk(0, 0))])
    # make the PSBT spend prev:0 and attach the full previous transaction
    psbt.inputs[0].vin.txid, psbt.inputs[0].vin.vout = prev.txid(), 0
    psbt.inputs[0].non_witness_utxo = prev
    psbt.inputs[0].witness_utxo = TransactionOutput(60_000, acct.spk(0, 0))  # lies: lower amount
    rejected(psbt, acct, "input_amount_mismatch", require_platform_signature=False)


def test_missing_amount_is_refused(acct):
    psbt = acct.psbt()
    psbt.inputs[0].witness_utxo = None
    rejected(psbt, acct, "input_amount_unknown")


def test_non_all_sighash_is_refused(acct):
    psbt = acct.psbt()
    psbt.inputs[0].sighash_type = SIGHASH.NONE
    rejected(psbt, acct, "sighash_not_all")


def test_signature_with_non_all_sighash_byte_is_refused(acct):
    psbt = acct.psbt()
    psbt.inputs[0].sighash_type = SIGHASH.SINGLE
    psbt.sign_with(acct.platform, sighash=SIGHASH.SINGLE)
    psbt.inputs[0].sighash_type = None
    rejected(psbt, acct, "sighash_not_all")


def test_missing_platform_signature_is_refused(acct):
    rejected(acct.psbt(), acct, "platform_signature_missing")


def test_invalid_platform_signature_is_refused(acct):
    psbt = acct.psbt()
    psbt.sign_with(acct.platform)
    pub = next(iter(psbt.inputs[0].partial_sigs))
    sig = bytearray(psbt.inputs[0].partial_sigs[pub])
    sig[10] ^= 1
    psbt.inputs[0].partial_sigs[pub] = bytes(sig)
    rejected(psbt, acct, "platform_signature_invalid")


def test_signature_from_a_different_transaction_is_invalid(acct):
    signed = acct.psbt()
    signed.sign_with(acct.platform)
    altered = acct.psbt(outputs=((FOREIGN_ADDR, 40_000),), change=(1, 3, 59_000))
    altered.inputs[0].partial_sigs = dict(signed.inputs[0].partial_sigs)
    rejected(altered, acct, "platform_signature_invalid")


def test_wrong_network_is_refused(acct):
    from embit.networks import NETWORKS
    psbt = acct.psbt()
    psbt.sign_with(acct.platform)
    main_xpub = seeded_root("mainnet").to_public()
    main_xpub.version = NETWORKS["main"]["xpub"]
    psbt.xpubs[main_xpub] = DerivationPath(main_xpub.my_fingerprint, [])
    rejected(psbt, acct, "wrong_network")


def test_outputs_altered_after_building_are_refused(acct):
    built = acct.psbt()
    expected = built.tx.txid().hex()
    altered = acct.psbt(outputs=((FOREIGN_ADDR, 60_000),), change=(1, 3, 39_000))
    altered.sign_with(acct.platform)
    rejected(altered, acct, "psbt_modified", expected_txid=expected)


def test_fee_caps(acct):
    psbt = acct.psbt(outputs=((FOREIGN_ADDR, 1_000),), change=(1, 3, 90_000))
    psbt.sign_with(acct.platform)
    err = rejected(psbt, acct, "fee_share_too_high")
    assert err.details == {"fee_sat": 9_000, "external_sat": 1_000}
    rejected(psbt, acct, "fee_too_high", caps=FeeCaps(max_fee_sat=5_000))
    rejected(psbt, acct, "fee_rate_too_high", caps=FeeCaps(max_fee_rate=10, max_fee_share=100))


def test_negative_fee_is_refused(acct):
    psbt = acct.psbt(change=(1, 3, 60_000))
    psbt.sign_with(acct.platform)
    rejected(psbt, acct, "negative_fee")


def test_garbage_is_psbt_malformed():
    with pytest.raises(PsbtRejected) as info:
        parse("cHNidP8Bnot-a-psbt")
    assert info.value.code == "psbt_malformed"


def kernel_ok(raw: bytes, spent: list[tuple[bytes, int]]) -> bool:
    tx = pbk.Transaction(raw)
    outs = [pbk.TransactionOutput(pbk.ScriptPubkey(s), a) for s, a in spent]
    pre = PrecomputedTransactionData(tx, outs)
    return all(pbk.ScriptPubkey(s).verify(a, tx, pre, i, pbk.ScriptVerificationFlags.ALL)
               for i, (s, a) in enumerate(spent))


@pytest.mark.parametrize("template,decay", [("2of3", None), ("2of3_decaying", 144)])
@pytest.mark.parametrize("signers", [("platform", "server"), ("recovery", "server"), ("platform", "recovery")])
def test_finalizer_multisig_path_passes_the_kernel(template, decay, signers):
    a = Account(template, decay, label=f"fin-{template}")
    psbt = a.psbt(inputs=((0, 0, 100_000), (1, 2, 20_000)), change=(1, 5, 69_000))
    for who in signers:
        assert psbt.sign_with(getattr(a, who)) == 2
    intent = inspect(roundtrip(psbt), a.view, caps=CAPS, require_platform_signature=False)
    raw = finalize(psbt, intent.inputs, a.view)
    spent = [(a.spk(0, 0).data, 100_000), (a.spk(1, 2).data, 20_000)]
    assert kernel_ok(raw, spent)
    # a corrupted signature fails the kernel: the check is real
    bad = bytearray(raw)
    sig_at = bad.find(psbt.inputs[0].partial_sigs[next(iter(psbt.inputs[0].partial_sigs))][:20])
    bad[sig_at + 8] ^= 1
    assert not kernel_ok(bytes(bad), spent)


def test_finalizer_recovery_timelock_path_passes_the_kernel():
    a = Account("2of3_decaying", 144, label="fin-rec")
    psbt = a.psbt(sequence=144)
    # the recovery key signs with its timelock-branch key (/2/* for receive)
    rec_path = [int(p[:-1]) + H for p in a.keys[1].path.split("/")] + [2, 0]
    psbt.inputs[0].bip32_derivations[a.recovery.derive(rec_path).to_public().key] = \
        DerivationPath(a.recovery.my_fingerprint, rec_path)
    assert psbt.sign_with(a.recovery) == 2  # its multisig-branch key and its timelock-branch key
    intent = inspect(roundtrip(psbt), a.view, caps=CAPS, require_platform_signature=False)
    raw = finalize(psbt, intent.inputs, a.view, recovery_path=True)
    assert kernel_ok(raw, [(a.spk(0, 0).data, 100_000)])
    # with nSequence below the timelock the interpreter refuses (CHECKSEQUENCEVERIFY)
    early = a.psbt(sequence=143)
    early.inputs[0].bip32_derivations = psbt.inputs[0].bip32_derivations
    early.sign_with(a.recovery)
    raw_early = finalize(early, intent.inputs, a.view, recovery_path=True)
    assert not kernel_ok(raw_early, [(a.spk(0, 0).data, 100_000)])


# -- derive once (issue #19): the reused witness script and the cached derivations -----
@pytest.mark.parametrize("template,decay", [("2of3", None), ("2of3_decaying", 144)])
def test_inspection_hands_the_proved_witness_script_to_the_finalizer(template, decay):
    """The finalizer's witness from inspection's script is byte-for-byte the one it
    derives itself, and that script is the descriptor's at the input's path."""
    from dataclasses import replace
    a = Account(template, decay, label=f"reuse-{template}")
    psbt = a.psbt(inputs=((0, 0, 100_000), (1, 2, 20_000)), change=(1, 5, 69_000))
    for who in ("platform", "server"):
        psbt.sign_with(getattr(a, who))
    intent = inspect(roundtrip(psbt), a.view, caps=CAPS, require_platform_signature=False)
    for info in intent.inputs:
        desc = a.view.receive if info.branch == 0 else a.view.change
        assert info.witness_script == desc.derive(info.index).witness_script().data
    derived_again = tuple(replace(i, witness_script=b"") for i in intent.inputs)
    assert finalize(psbt, intent.inputs, a.view) == finalize(psbt, derived_again, a.view)


def test_cached_public_derivation_equals_embit():
    from embit.bip32 import HDKey
    from cosigner.psbt import child_pub
    for label in ("p", "q", "r"):
        xpub = seeded_root(label).derive("m/48h/1h/0h/2h").to_public().to_base58()
        for branch in (0, 1, 2, 3):
            for index in (0, 1, 19, 2**31 - 1):
                assert child_pub(xpub, branch, index).sec() == HDKey.from_string(xpub).derive([branch, index]).key.sec()
    with pytest.raises(ValueError):
        child_pub(xpub, 0, 2**31)


def test_multisig_keys_are_read_from_the_script_in_script_order():
    from cosigner.finalize import multisig_order, script_multisig_keys
    for template, decay in (("2of3", None), ("2of3_decaying", 144)):
        a = Account(template, decay, label=f"order-{template}")
        ws = a.view.change.derive(7).witness_script().data
        assert script_multisig_keys(ws) == [p.sec() for p in multisig_order(a.view, 1, 7)]


@pytest.mark.parametrize("template,decay", [("2of3", None), ("2of3_decaying", 144)])
def test_inspection_scripts_equal_embit_descriptor_derivation(template, decay):
    """The scripts inspection proves inputs and change with (for 2of3 from the cached
    branch keys, sorted as sortedmulti sorts) are embit's descriptor derivation at every
    path; the decaying template goes through embit itself."""
    from cosigner.psbt import _derived, _fast_applies
    a = Account(template, decay, label=f"fast-{template}")
    for branch in (0, 1):
        desc = a.view.receive if branch == 0 else a.view.change
        assert _fast_applies(a.view, desc, branch) is (template == "2of3")
        for index in (0, 1, 7, 19, 1000, 2**31 - 1):
            mine, theirs = _derived(a.view, branch, index), desc.derive(index)
            assert mine.witness_script().data == theirs.witness_script().data
            assert mine.script_pubkey() == theirs.script_pubkey()


def test_fast_scripts_are_not_used_for_a_descriptor_of_other_keys():
    """A view whose descriptors do not match its keys never gets the fast path (so a
    derivation the descriptor does not make cannot be proved)."""
    from dataclasses import replace
    from cosigner.psbt import _fast_applies
    a, b = Account(label="fast-a"), Account(label="fast-b")
    mixed = replace(a.view, receive=b.view.receive, change=b.view.change)
    assert not _fast_applies(mixed, mixed.receive, 0) and not _fast_applies(mixed, mixed.change, 1)
    assert _fast_applies(a.view, a.view.change, 1) and not _fast_applies(a.view, a.view.change, 0)


def test_derive_private_is_embits_derive():
    """The signer's account key: same key, chain code, depth, parent fingerprint, child
    number and serialization as embit's HDKey.derive, hardened and not."""
    import os
    from embit.bip32 import HDKey
    from cosigner.psbt import HARDENED, derive_private
    for _ in range(20):
        root = HDKey.from_seed(os.urandom(32), version=bytes.fromhex("04358394"))
        for path in ([48 + HARDENED, 1 + HARDENED, 0 + HARDENED, 2 + HARDENED], [HARDENED + 7], [0, 5],
                     [44 + HARDENED, 3, HARDENED + 2**31 - 1]):
            ours, embits = derive_private(root, path), root.derive(path)
            assert ours.to_string() == embits.to_string()
            assert (ours.depth, ours.fingerprint, ours.child_number) == (embits.depth, embits.fingerprint,
                                                                          embits.child_number)
    with pytest.raises(ValueError):
        derive_private(root, [])
    with pytest.raises(ValueError):
        derive_private(root.to_public(), [1])
