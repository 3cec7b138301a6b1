"""Account use cases: create (keys, descriptors, sealed server key, the account's first
watched scripts in the chain index), read, issue receive addresses under a gap limit,
balance, history, export; the optional mirror into a Core watch-only wallet.

Services take an open session (the caller's transaction), a CosignerContext and `now`.
Nothing here calls bitcoind except `import_wallet` (the opt-in mirror).
"""
from __future__ import annotations

import datetime as dt
import os
import secrets

from embit.bip32 import HDKey
from embit.descriptor import Descriptor
from embit.descriptor.checksum import add_checksum
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import services as audit
from chain import coins as chain_coins
from chain import restore as chain_restore
from chain import scripts as chain_scripts
from chain import wallets
from chain.model import CHANGE, RECEIVE
from cosigner import descriptors as d
from cosigner.context import CosignerContext
from cosigner.errors import AccountNotFound, GapLimit, InvalidDescriptor, InvalidKey
from cosigner.model import Account, CosignerKey, IssuedAddress
from cosigner.psbt import AccountView
from cosigner.vault import seal
from workers.jobs import schedule

GAP_LIMIT = 20
MAX_WATCH_ADDRESSES = 1_000
TEMPLATES = ("2of3", "2of3_decaying", "watch_only")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def create(session: Session, ctx: CosignerContext, *, device_id: str, body: dict, now: dt.datetime) -> Account:
    """Create an account for `device_id`. Validates everything before writing anything,
    then writes the account, its sealed server key and its first watched scripts
    (chain index; no bitcoind call). With the Core mirror on (`ctx.import_descriptors`)
    the import is scheduled as a durable job (`account.import`) in the same
    transaction; callers may also run `import_wallet` right after commit."""
    network = body["network"]
    if network != ctx.network:
        raise InvalidKey(f"this server runs on {ctx.network}, not {network}", code="wrong_network")
    template = body["template"]
    account = Account(id=_new_id("acct"), owner_device_id=device_id, name=body["name"], network=network,
                      template=template, created_at=now, next_receive_index=0,
                      birthday=body.get("birthday"))
    if template == "watch_only":
        _watch_only(account, body, network)
    else:
        for field_name in ("platform_key", "recovery_key"):
            if not body.get(field_name):
                raise InvalidKey(f"{field_name} is required for template {template}", code="missing_key")
        platform = d.parse_key(body["platform_key"]["xpub"], body["platform_key"]["origin"], network)
        recovery = d.parse_key(body["recovery_key"]["xpub"], body["recovery_key"]["origin"], network)
        root = HDKey.from_seed(os.urandom(32), version=d.network_params(network)["xprv"])
        server = d.server_key(root, network)
        if server.xpub in (platform.xpub, recovery.xpub):
            raise InvalidKey("a key equals the server's key", code="duplicate_keys")
        desc = d.build(template, platform, recovery, server, body.get("decay_blocks"))
        key_id = _new_id("key")
        sealed = seal(ctx.keyring, root.to_base58().encode(), key_id)
        session.add(CosignerKey(id=key_id, network=network, fingerprint=server.fingerprint, path=server.path,
                                xpub=server.xpub, kek_id=sealed.kek_id, wrapped_dek=sealed.wrapped_dek,
                                ciphertext=sealed.ciphertext, created_at=now))
        session.flush()  # the account row references it
        account.platform_key = {"xpub": platform.xpub, "origin": platform.origin}
        account.recovery_key = {"xpub": recovery.xpub, "origin": recovery.origin}
        account.server_key_id = key_id
        account.decay_blocks = body.get("decay_blocks")
        account.receive_descriptor, account.change_descriptor = desc.receive, desc.change
    session.add(account)
    session.flush()
    chain_scripts.register_account(session, account.id, branches(account), now)
    if account.birthday:  # index the account's past from its birthday (scanblocks), in the background
        chain_restore.request(session, account.id, now)
        schedule(session, "chain.restore", account.id, now)
    if ctx.import_descriptors:
        schedule(session, "account.import", account.id, now)
    audit.record(session, actor=device_id, action="account.created", subject=account.id,
                 details={"template": template, "network": network}, now=now)
    return account


def branches(account: Account) -> list[tuple[int, str]]:
    """The account's derivation branches for the chain index: (0, receive) and
    (1, change) descriptors; a watch-only address list is one non-ranged branch 0."""
    out = [(RECEIVE, account.receive_descriptor)]
    if account.change_descriptor:
        out.append((CHANGE, account.change_descriptor))
    return out


def backfill_index(session: Session, now: dt.datetime, *, restore: bool) -> tuple[int, int]:
    """Upgrade path: register the chain-index scripts of every account created before
    the index existed (no `chain_branches` rows); with `restore`, also request a
    restore of each such account from its birthday (set to its creation time when it
    has none) and schedule the `chain.restore` job. Idempotent. Returns (accounts
    registered, restores requested)."""
    from chain.model import ScriptBranch
    have = select(ScriptBranch.account_id)
    todo = list(session.scalars(select(Account).where(Account.id.not_in(have))))
    for account in todo:
        chain_scripts.register_account(session, account.id, branches(account), now)
        if restore:
            account.birthday = account.birthday or int(account.created_at.timestamp())
            chain_restore.request(session, account.id, now)
            schedule(session, "chain.restore", account.id, now)
    return len(todo), len(todo) if restore else 0


def _watch_only(account: Account, body: dict, network: str) -> None:
    desc, addresses = body.get("descriptor"), body.get("addresses")
    if bool(desc) == bool(addresses):
        raise InvalidDescriptor("a watch-only account needs a descriptor or a list of addresses (not both)")
    if addresses:
        if len(addresses) > MAX_WATCH_ADDRESSES:
            raise InvalidDescriptor(f"at most {MAX_WATCH_ADDRESSES} addresses")
        for a in addresses:
            _check_address(a, network)
        account.receive_descriptor = "\n".join(add_checksum(f"addr({a})") for a in addresses)
        return
    if d.contains_private(desc) or d.contains_private(body.get("change_descriptor")) or "prv" in desc:
        raise InvalidKey("this descriptor contains a PRIVATE key: nothing was stored", code="private_key_sent")
    body_text, _, checksum = desc.strip().partition("#")
    if checksum and add_checksum(body_text) != desc.strip():
        raise InvalidDescriptor("descriptor checksum does not match", code="bad_checksum")
    try:
        parsed = Descriptor.from_string(body_text)
        parsed.derive(0).address(d.network_params(network))
    except Exception:
        raise InvalidDescriptor("not a descriptor this server understands") from None
    account.receive_descriptor = add_checksum(body_text)
    change = body.get("change_descriptor")
    if change:
        cbody = change.strip().split("#")[0]
        try:
            Descriptor.from_string(cbody)
        except Exception:
            raise InvalidDescriptor("change_descriptor is not a valid descriptor") from None
        account.change_descriptor = add_checksum(cbody)


def _check_address(address: str, network: str) -> None:
    from embit.script import Script
    try:
        Script.from_address(address)
    except Exception:
        raise InvalidDescriptor(f"{address!r} is not an address", code="invalid_address") from None
    hrp = d.network_params(network)["bech32"]
    if address.lower().startswith(("bc1", "tb1", "bcrt1")) and not address.lower().startswith(hrp + "1"):
        raise InvalidDescriptor(f"{address!r} is not a {network} address", code="wrong_network")


def import_wallet(session: Session, ctx: CosignerContext, account_id: str, now: dt.datetime) -> bool:
    """Create/load the account's wallet in bitcoind and import its descriptors.
    Idempotent; marks the account imported. Raises ChainUnavailable when bitcoind is down."""
    account = session.get(Account, account_id)
    if account is None:
        return False
    wallet = wallets.wallet_for(ctx.node, ctx.wallet_prefix, account.id)
    timestamp = account.birthday if account.birthday else "now"
    if not _ranged(account):
        descs = [(x, False) for x in account.receive_descriptor.split("\n")]
        wallets.ensure_imported(wallet, descs, timestamp=timestamp, ranged=False)
    else:
        descs = [(account.receive_descriptor, False)]
        if account.change_descriptor:
            descs.append((account.change_descriptor, True))
        wallets.ensure_imported(wallet, descs, timestamp=timestamp)
    if account.imported_at is None:
        account.imported_at = now
    return True


def get_owned(session: Session, account_id: str, device_id: str) -> Account:
    """The account if `device_id` owns it; AccountNotFound otherwise (no existence leak)."""
    account = session.get(Account, account_id) if isinstance(account_id, str) and len(account_id) <= 40 else None
    if account is None or account.owner_device_id != device_id:
        raise AccountNotFound("no such account")
    return account


def list_owned(session: Session, device_id: str) -> list[Account]:
    return list(session.scalars(select(Account).where(Account.owner_device_id == device_id)
                                .order_by(Account.created_at)))


def view(account: Account, session: Session) -> AccountView:
    """The inspection view of a multisig account."""
    key = session.get(CosignerKey, account.server_key_id)
    fp, _, path = account.platform_key["origin"].strip("[]").partition("/")
    platform = d.AccountKey(fp, path, account.platform_key["xpub"])
    fp, _, path = account.recovery_key["origin"].strip("[]").partition("/")
    recovery = d.AccountKey(fp, path, account.recovery_key["xpub"])
    server = d.AccountKey(key.fingerprint, key.path, key.xpub)
    receive = d.parse_descriptor(account.receive_descriptor)   # parsed once per process
    change = d.parse_descriptor(account.change_descriptor)
    return AccountView(account.network, account.template, platform, recovery, server, receive, change)


def server_key_info(session: Session, account: Account) -> dict | None:
    if not account.server_key_id:
        return None
    key = session.get(CosignerKey, account.server_key_id)
    return {"xpub": key.xpub, "origin": f"[{key.fingerprint}/{key.path}]"}


def issue_address(session: Session, ctx: CosignerContext, account: Account, now: dt.datetime) -> IssuedAddress:
    """The next receive address. Refuses (GapLimit) when GAP_LIMIT issued addresses in a
    row are still unused, since wallets restoring from the descriptor scan only that far."""
    if account.watch_only and not _ranged(account):
        raise GapLimit("this watch-only account has a fixed address list", code="not_ranged")
    issued = account.next_receive_index
    if issued >= GAP_LIMIT:
        highest_used = chain_scripts.highest_used(session, account.id, RECEIVE)
        unused_ahead = issued - (highest_used + 1 if highest_used is not None else 0)
        if unused_ahead >= GAP_LIMIT:
            raise GapLimit(f"{unused_ahead} issued addresses are still unused; use one before asking for more",
                           details={"unused": unused_ahead, "gap_limit": GAP_LIMIT})
    address = d.address(account.receive_descriptor, issued, account.network)
    row = IssuedAddress(account_id=account.id, branch=0, index=issued, address=address, created_at=now)
    account.next_receive_index = issued + 1
    session.add(row)
    session.flush()
    return row


def _ranged(account: Account) -> bool:
    return "*" in account.receive_descriptor


def issued_addresses(session: Session, account: Account) -> list[IssuedAddress]:
    return list(session.scalars(select(IssuedAddress).where(IssuedAddress.account_id == account.id)
                                .order_by(IssuedAddress.index)))


def balance(session: Session, account: Account, now: dt.datetime) -> dict:
    """Integer satoshis from the chain index: confirmed, trusted_pending (own change),
    untrusted_pending, immature, reserved_sat (part of confirmed held by built spends)."""
    return chain_coins.balance(session, account.id, now)
