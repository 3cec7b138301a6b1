"""/v1/accounts: create (2-of-3, decaying, watch-only), read, addresses, balance,
history, export; /v1/fees."""
from __future__ import annotations

import logging

from flask import g
from flask_smorest import Blueprint

from app import fiat
from app.auth.device import signed
from app.cosigner_schemas import (AccountCreateSchema, AccountSchema, AddressSchema, BalanceSchema,
                                  ExportQuerySchema, FeesSchema, HistoryQuerySchema, TransactionPageSchema)
from app.deps import deps
from app.errors import ApiError
from app.extensions import db
from app.idempotency import idempotent
from app.price_schemas import CurrencyQuerySchema
from app.transaction import attempting, committing
from app import response_schemas as rs
from app.openapi_errors import errors
from chain import restore as chain_restore
from chain.errors import ChainError
from cosigner import accounts, export, history, policy_service, quotas
from store.base import utcnow

log = logging.getLogger(__name__)
bp = Blueprint("accounts", __name__, url_prefix="/v1", description="Multisig accounts")


def account_out(account) -> dict:
    return {"id": account.id, "name": account.name, "network": account.network, "template": account.template,
            "decay_blocks": account.decay_blocks, "platform_key": account.platform_key,
            "recovery_key": account.recovery_key, "server_key": accounts.server_key_info(db.session, account),
            "receive_descriptor": account.receive_descriptor, "change_descriptor": account.change_descriptor,
            "imported": account.imported_at is not None, "policy": policy_service.summary(db.session, account),
            "restore": chain_restore.progress(db.session, account.id), "created_at": account.created_at}


@bp.route("/accounts", methods=["POST"])
@errors({400: "`error.code`: private_key_sent (nothing stored), invalid_key, invalid_descriptor, duplicate_keys, "
              "bad_checksum, invalid_idempotency_key.",
         409: "`error.code`: account_quota_exceeded (`details.limit`).",
         422: "`error.code`: validation_error, idempotency_key_reused.",
         429: "`error.code`: restore_quota_exceeded (a past `birthday`: `details.retry_after`), rate_limited."})
@signed
@idempotent
@bp.arguments(AccountCreateSchema)
@bp.response(201, AccountSchema)
def create_account(body):
    """Create an account: the server adds its cosigner key, builds the descriptors and
    starts watching the account's first scripts (no bitcoind call; with
    BITCOIND_IMPORT_DESCRIPTORS the descriptors are also mirrored into a Core wallet)."""
    ctx = deps().cosigner
    with committing():
        quotas.check_accounts_per_device(db.session, g.device.id, deps().settings.max_accounts_per_device)
        quotas.check_restores(db.session, g.device.id, body.get("birthday"), utcnow())
        account = accounts.create(db.session, ctx, device_id=g.device.id, body=body, now=utcnow())
    if ctx.import_descriptors:  # the optional Core mirror; Custos never reads it
        try:
            with attempting():  # a failed import never undoes the account, even under @idempotent (issue #14, L3)
                accounts.import_wallet(db.session, ctx, account.id, utcnow())
        except ChainError as err:  # the account.import job converges later
            log.warning("bitcoind import deferred for %s: %s", account.id, type(err).__name__)
    return account_out(account)


@bp.route("/accounts", methods=["GET"])
@signed
@bp.response(200, AccountSchema(many=True))
def list_accounts():
    """The calling device's accounts."""
    return [account_out(a) for a in accounts.list_owned(db.session, g.device.id)]


@bp.route("/accounts/<account_id>", methods=["GET"])
@signed
@bp.response(200, AccountSchema)
def get_account(account_id):
    return account_out(accounts.get_owned(db.session, account_id, g.device.id))


@bp.route("/accounts/<account_id>/addresses", methods=["POST"])
@signed
@bp.response(201, AddressSchema)
def new_address(account_id):
    """The next unused receive address (gap limit 20)."""
    with committing():
        account = accounts.get_owned(db.session, account_id, g.device.id)
        return accounts.issue_address(db.session, deps().cosigner, account, utcnow())


@bp.route("/accounts/<account_id>/addresses", methods=["GET"])
@signed
@bp.response(200, AddressSchema(many=True))
def list_addresses(account_id):
    account = accounts.get_owned(db.session, account_id, g.device.id)
    return accounts.issued_addresses(db.session, account)


@bp.route("/accounts/<account_id>/balance", methods=["GET"])
@signed
@bp.arguments(CurrencyQuerySchema, location="query")
@bp.response(200, BalanceSchema)
def balance(query, account_id):
    """Integer satoshis from the chain index: confirmed, trusted pending (own change),
    untrusted pending, immature, reserved (part of confirmed held by built spends).
    With `?currency=USD`: a `fiat` object (confirmed + trusted pending at the current price)."""
    currency = fiat.requested_currency(query)
    result = accounts.balance(db.session, accounts.get_owned(db.session, account_id, g.device.id), utcnow())
    return fiat.with_balance_fiat(db.session, result, currency, utcnow())


@bp.route("/accounts/<account_id>/transactions", methods=["GET"])
@signed
@bp.arguments(HistoryQuerySchema, location="query")
@bp.response(200, TransactionPageSchema)
def transactions(query, account_id):
    """Newest first. With `?currency=USD`: each entry a `fiat` object at its day's price."""
    currency = fiat.requested_currency(query)
    account = accounts.get_owned(db.session, account_id, g.device.id)
    page = history.transactions(db.session, account, cursor=int(query.get("cursor", 0)), limit=query["limit"])
    return fiat.with_history_fiat(db.session, page, currency)


@bp.route("/accounts/<account_id>/export", methods=["GET"])
@signed
@bp.arguments(ExportQuerySchema, location="query")
@bp.response(200, rs.ExportSchema)
def export_account(query, account_id):
    """descriptors | bsms (BIP-129 record, text) | sparrow (Specter/Sparrow wallet JSON)."""
    account = accounts.get_owned(db.session, account_id, g.device.id)
    try:
        result = export.export(account, query["format"])
    except ValueError as err:
        raise ApiError(str(err), code="export_unsupported") from None
    return {"format": query["format"], "export": result}


@bp.route("/fees", methods=["GET"])
@signed
@bp.response(200, FeesSchema)
def fees():
    """Fee-rate estimates in sat/vB for 1, 3, 6, 12, 24 and 144 blocks (cached 30 s)."""
    return history.fee_estimates(deps().cosigner)
