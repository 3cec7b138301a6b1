"""Stateful property test of the signing gate (hypothesis RuleBasedStateMachine) on the
suite's database (PostgreSQL under CI) and the test chain (devnet, or BITCOIND).

Random interleavings of build + submit, approvals and denials by a device and by staff,
owner and staff freezes and unfreezes, policy changes (tightening at once, loosening
pending), time moving forward, the due jobs (releases, approval expiry, pending changes),
fee bumps and cancellations, and out-of-band verification (issue #17: a `verify` rule with
the owner's authenticator, confirmations by TOTP code at the test's clock). After every
step, for every spend that went out:

- it was not sent while the account was frozen (owner or staff);
- the policy version in force at that moment approves it: the engine (pure) re-run with
  that version, the sends before it and the moment of sending says approve, or its holds
  are satisfied — enough approvals by approvers that version names, given before the
  deadline, and that version's delay elapsed since the phone's signature was accepted;
- the 24 h velocity limits of that version are not exceeded by what was sent;
- when that version's `verify` rule fires for it, a verification on a channel the rule
  accepts was confirmed before it was sent;
and every refused spend (denied / expired) has an audit row that says so.

The clock is the test's: services take `now`, jobs run with it. Bounded to a few
examples so it stays well under two minutes.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from itertools import count
from urllib.parse import urlsplit

from hypothesis import HealthCheck, settings as hsettings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, \
    run_state_machine_as_test
from sqlalchemy import select

from audit.model import AuditEvent
from client.phone import PhoneWallet
from client.sdk import ApiError, CustosClient, DeviceKey
from config.bootstrap import cosigner_context
from cosigner import policy as engine
from cosigner import policy_service, spends
from cosigner.errors import CosignerError
from cosigner.model import Account, AccountPolicy, Spend, SpendApproval
from store.base import utcnow
from store.session import session_scope
from tests.api.test_policy import run_due_jobs
from tests.api.verification_kit import with_totp
import verification.channels
import verification.services
from verification.errors import VerificationError
from verification.model import VerificationRequest

SENT = ("broadcast", "confirmed", "deep")
LOOSEN_DELAY = dt.timedelta(hours=72)
COIN_BTC = Decimal("0.05")

amounts = st.sampled_from([100_000, 450_000, 100_000, 1_000_000, 2_500_000])
advances = st.sampled_from([dt.timedelta(minutes=5), dt.timedelta(hours=1), dt.timedelta(hours=25),
                            dt.timedelta(days=3, hours=1), dt.timedelta(days=8)])


def rules_strategy(approver: str):
    approvals = st.one_of(st.none(), st.builds(
        lambda above, staff, dev: {"above_sat": above, "required": 1, "staff": staff,
                                   "devices": [approver] if dev else []},
        st.sampled_from([0, 400_000]), st.booleans(), st.booleans()))
    return st.fixed_dictionaries({
        "max_per_tx_sat": st.sampled_from([None, None, 300_000, 2_000_000]),
        "limits": st.sampled_from([[], [{"window": "24h", "max_sat": 4_000_000}], [],
                                   [{"window": "24h", "max_sat": 1_200_000}]]),
        "delay_all": st.booleans(),
        "delay_above_sat": st.sampled_from([None, 400_000]),
        "delay_seconds": st.sampled_from([3600, 86400, 7 * 86400]),
        "approvals": approvals,
        "frozen": st.sampled_from([False] * 5 + [True]),
        "verify": st.sampled_from([None, None, {"above_sat": 400_000, "channel": "totp"},
                                   {"above_sat": 0, "channel": "totp"}]),
    })


def _device(app, n: int):
    """A registered device; each example comes from its own address (registration is
    rate-limited per address)."""
    test_client = app.test_client()

    def send(method, url, headers, body):
        u = urlsplit(url)
        resp = test_client.open(u.path + (f"?{u.query}" if u.query else ""), method=method, headers=headers,
                                data=body, environ_base={"REMOTE_ADDR": f"10.77.{n // 250}.{n % 250 + 1}"})
        return resp.status_code, dict(resp.headers), resp.data
    c = CustosClient("http://localhost", DeviceKey.generate(), transport=send)
    c.register()
    return c


def test_signing_gate_state_machine(app_factory, chain_settings, chain_node, mine):
    cfg = replace(chain_settings, staff_api_keys=(("alice", "a" * 32),))
    app = app_factory(cfg)
    ctx = cosigner_context(cfg)
    db_url = cfg.database_url
    serial = count()

    class GateMachine(RuleBasedStateMachine):
        @initialize(data=st.data())
        def setup(self, data):
            self.now = utcnow()
            n = next(serial)
            self.owner, self.approver = _device(app, n), _device(app, n)
            self.phone = PhoneWallet()
            account = self.owner.call("POST", "/v1/accounts", self.phone.account_request("prop"))
            self.phone.verify_account(account)
            self.account = account
            self.aid = account["account_id"]
            addresses = [self.owner.call("POST", f"/v1/accounts/{self.aid}/addresses")["address"] for _ in range(6)]
            chain_node.faucet.sendmany("", {a: COIN_BTC for a in addresses})
            mine(1)
            self.spend_ids: list[str] = []
            self.accepted_at: dict[str, dt.datetime] = {}   # when the phone's signature was accepted
            self.checked: set[str] = set()
            self.freezes = 0
            self.totp = with_totp(self.owner, account)    # the owner's second channel
            with self._session() as s:  # a first policy: from no rules, everything tightens at once
                policy_service.set_rules(s, self._account(s), data.draw(rules_strategy(self.approver.device_id)),
                                         actor=self.owner.device_id, now=self.now, loosen_delay=LOOSEN_DELAY,
                                         notify=ctx.notify, ctx=ctx)

        # -- helpers --------------------------------------------------------------------------
        def _session(self):
            return session_scope(db_url)

        def _account(self, s) -> Account:
            return s.get(Account, self.aid)

        def _held(self):
            with self._session() as s:
                return [r.id for r in s.scalars(select(Spend).where(
                    Spend.account_id == self.aid, Spend.state.in_(("delayed", "awaiting_approval"))))]

        def _sign_and_submit(self, spend: dict, outputs: list[dict]):
            signed = self.phone.sign(self.phone.verify_spend(self.account, spend, outputs))
            try:
                with self._session() as s:
                    got = spends.submit(s, ctx, spend["spend_id"], self.owner.device_id, signed, self.now)
                    state = got.state
            except CosignerError:
                return
            if state != "built":
                self.accepted_at.setdefault(spend["spend_id"], self.now)

        # -- rules ----------------------------------------------------------------------------
        @rule(amount=amounts)
        def build_and_submit(self, amount):
            outputs = [{"address": chain_node.faucet.getnewaddress(), "amount_sat": amount}]
            try:
                spend = self.owner.call("POST", f"/v1/accounts/{self.aid}/spends",
                                        {"outputs": outputs, "fee_rate_sat_vb": 2})
            except ApiError:      # no free coin left: nothing to do
                return
            self.spend_ids.append(spend["spend_id"])
            self._sign_and_submit(spend, outputs)

        @rule(amount=amounts)
        def build_and_submit_again(self, amount):   # spends are the point: twice the weight
            self.build_and_submit(amount)

        @precondition(lambda self: self.spend_ids)
        @rule(data=st.data(), kind=st.sampled_from(["device", "staff"]), decision=st.sampled_from(
            ["approve", "approve", "deny"]))
        def approval(self, data, kind, decision):
            spend_id = data.draw(st.sampled_from(self.spend_ids))
            approver = self.approver.device_id if kind == "device" else "alice"
            try:
                with self._session() as s:
                    spends.approve(s, ctx, spend_id, kind=kind, approver=approver, decision=decision, note=None,
                                   now=self.now)
            except CosignerError:
                pass

        @precondition(lambda self: self.freezes < 2)   # rarer, or most examples end frozen
        @rule(by=st.sampled_from(["owner", "staff"]), frozen=st.booleans())
        def freeze(self, by, frozen):
            self.freezes += frozen
            with self._session() as s:
                policy_service.freeze(s, self._account(s), by=by, actor="alice" if by == "staff" else
                                      self.owner.device_id, frozen=frozen, now=self.now,
                                      loosen_delay=LOOSEN_DELAY, notify=ctx.notify, ctx=ctx)

        @rule(data=st.data())
        def set_policy(self, data):
            rules = data.draw(rules_strategy(self.approver.device_id))
            with self._session() as s:
                policy_service.set_rules(s, self._account(s), rules, actor=self.owner.device_id, now=self.now,
                                         loosen_delay=LOOSEN_DELAY, notify=ctx.notify, ctx=ctx)

        @rule(data=st.data(), wrong=st.sampled_from([False, False, True]))
        def confirm_by_totp(self, data, wrong):
            """The owner answers a pending verification (a spend, a loosening) with the code
            of the test's moment — or a wrong one."""
            with self._session() as s:
                pending = [r.id for r in s.scalars(select(VerificationRequest).where(
                    VerificationRequest.account_id == self.aid, VerificationRequest.state == "pending"))]
            if not pending:
                return
            code = "000000" if wrong else self.totp.at(self.now)
            try:
                with self._session() as s:
                    verification.services.confirm_totp(s, ctx, data.draw(st.sampled_from(pending)),
                                                       self.owner.device_id, code, self.now)
            except (CosignerError, VerificationError):
                pass

        @rule(step=advances)
        def advance_and_run_jobs(self, step):
            self.now += step
            run_due_jobs(cfg, self.now)

        @rule(step=advances)
        def advance_and_run_jobs_again(self, step):   # time is what held spends wait for
            self.advance_and_run_jobs(step)

        @precondition(lambda self: self.spend_ids)
        @rule(data=st.data())
        def cancel(self, data):
            spend_id = data.draw(st.sampled_from(self.spend_ids))
            try:
                with self._session() as s:
                    spends.cancel(s, ctx, spend_id, self.owner.device_id, self.now)
            except CosignerError:
                pass

        @precondition(lambda self: self.spend_ids)
        @rule(data=st.data())
        def bump(self, data):
            spend_id = data.draw(st.sampled_from(self.spend_ids))
            try:
                replacement = self.owner.call("POST", f"/v1/spends/{spend_id}/bump", {"fee_rate": 6})
            except ApiError:
                return
            self.spend_ids.append(replacement["spend_id"])
            outputs = [{"address": o["address"], "amount_sat": o["amount_sat"]}
                       for o in replacement["outputs"] if not o["change"]]
            self._sign_and_submit(replacement, outputs)

        # -- invariants -------------------------------------------------------------------------
        @invariant()
        def every_send_was_allowed_when_it_was_signed(self):
            if not hasattr(self, "aid"):
                return
            with self._session() as s:
                sent = s.scalars(select(Spend).where(Spend.account_id == self.aid, Spend.broadcast_at.is_not(None))
                                 .order_by(Spend.broadcast_at)).all()
                for spend in sent:
                    if spend.id not in self.checked:
                        self._check_send(s, spend, [x for x in sent if x.broadcast_at < spend.broadcast_at])
                        self.checked.add(spend.id)

        def _check_send(self, s, spend: Spend, earlier: list[Spend]):
            at = spend.broadcast_at
            row = s.scalar(select(AccountPolicy).where(AccountPolicy.account_id == self.aid,
                                                       AccountPolicy.created_at <= at)
                           .order_by(AccountPolicy.version.desc()).limit(1))
            policy = engine.from_dict(row.rules, row.version) if row else engine.Policy()
            assert not policy.frozen and not policy.staff_frozen, f"{spend.id} sent while frozen"
            outpoints = frozenset(f"{i['txid']}:{i['vout']}" for i in spend.inputs)
            intent = engine.Intent(tuple((o["address"], o["amount_sat"]) for o in spend.outputs if not o["change"]),
                                   spend.fee_sat, spend.fee_rate, outpoints)
            history = [engine.HistoryEntry(x.broadcast_at, x.external_sat,
                                           frozenset(f"{i['txid']}:{i['vout']}" for i in x.inputs))
                       for x in earlier if x.state != "replaced" or x.replaced_by_id != spend.id]
            for lim in policy.limits:
                used = engine.used_in_window(history, intent, engine.WINDOWS[lim.window], at)
                assert used + intent.external_sat <= lim.max_sat, f"{spend.id} exceeds {lim}"
            decision = engine.evaluate(intent, policy, history, at)
            assert decision.action != "deny", (spend.id, decision)
            if decision.action == "require_approval":
                rules = policy.approvals
                approvals = s.scalars(select(SpendApproval).where(SpendApproval.spend_id == spend.id,
                                                                  SpendApproval.decision == "approve")).all()
                valid = [a for a in approvals
                         if spend.approval_expires_at and a.created_at <= spend.approval_expires_at
                         and ((a.approver_kind == "staff" and rules.staff)
                              or (a.approver_kind == "device" and a.approver_id in rules.devices))]
                assert len(valid) >= rules.required, f"{spend.id} sent without its approvals"
            if decision.verify is not None:
                kinds = verification.channels.kinds_for(decision.verify)
                confirmed = s.scalars(select(VerificationRequest).where(
                    VerificationRequest.subject_kind == "spend", VerificationRequest.subject_id == spend.id,
                    VerificationRequest.state == "confirmed")).all()
                assert any(r.confirmed_via in kinds and r.closed_at <= at for r in confirmed), \
                    f"{spend.id} sent without its out-of-band verification"
            if decision.release_at is not None:
                accepted = self.accepted_at[spend.id]
                assert accepted + dt.timedelta(seconds=policy.delay_seconds) <= at, f"{spend.id} sent early"

        @invariant()
        def every_refusal_is_recorded(self):
            if not hasattr(self, "aid"):
                return
            with self._session() as s:
                refused = s.scalars(select(Spend).where(Spend.account_id == self.aid,
                                                        Spend.state.in_(("denied", "expired")))).all()
                for spend in refused:
                    events = s.scalars(select(AuditEvent).where(AuditEvent.subject == spend.id)).all()
                    actions = {(e.action, (e.details or {}).get("action")) for e in events}
                    if spend.state == "denied":
                        assert ("spend.decision", "deny") in actions or ("spend.denied", None) in actions, spend.id
                        assert spend.decision is None or spend.decision.get("reasons") is not None
                    else:
                        assert ("spend.approval_expired", None) in actions, spend.id
                    assert spend.txid is None and spend.signed_psbt is None

    run_state_machine_as_test(GateMachine, settings=hsettings(
        max_examples=16, stateful_step_count=20, deadline=None, print_blob=True,
        suppress_health_check=list(HealthCheck)))
