"""Upgrade path: accounts created before the chain index existed get their scripts and a
restore from `flask custos chain-backfill` (idempotent)."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import delete, func, select

from client.phone import PhoneWallet
from tests.api.accounts_kit import create


def test_chain_backfill_registers_old_accounts_and_restores_them(device, chain_app, chain_node, mine, chain_settings):
    from chain import restore
    from chain.model import Restore, ScriptBranch, WatchedScript
    from config.bootstrap import chain_follower
    from store.base import utcnow
    from store.session import session_scope
    account = create(device, PhoneWallet())
    aid = account["account_id"]
    addr = device.call("POST", f"/v1/accounts/{aid}/addresses")["address"]
    with session_scope(chain_settings.database_url) as s:   # as if created before migration 0007
        s.execute(delete(WatchedScript).where(WatchedScript.account_id == aid))
        s.execute(delete(ScriptBranch).where(ScriptBranch.account_id == aid))
    chain_node.faucet.sendtoaddress(addr, Decimal("0.03"))
    mine(1)
    assert device.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 0     # not watched
    runner = chain_app.test_cli_runner()
    out = runner.invoke(args=["custos", "chain-backfill"])
    assert out.exit_code == 0 and "registered=1 restores=1" in out.output
    assert "registered=0" in runner.invoke(args=["custos", "chain-backfill"]).output
    with session_scope(chain_settings.database_url) as s:
        assert s.scalar(select(func.count()).select_from(WatchedScript).where(WatchedScript.account_id == aid)) == 40
        assert s.get(Restore, aid).state == "pending"
        from cosigner.model import Account
        birthday = s.get(Account, aid).birthday
    assert birthday is not None                        # its creation time
    restore.run(chain_follower(chain_settings), aid, birthday, utcnow())
    assert device.call("GET", f"/v1/accounts/{aid}")["restore"]["state"] == "done"
    assert device.call("GET", f"/v1/accounts/{aid}/balance")["confirmed"] == 3_000_000
