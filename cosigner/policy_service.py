"""Policy storage and decisions: versions, pending loosening changes, freezes, the
velocity ledger, and `decide()` which evaluates under the account's lock.

Atomicity: `lock_account()` is an UPDATE of the account row, which row-locks on
PostgreSQL and takes SQLite's write lock, so two concurrent decisions on one account
run one after the other and the second sees the first's reservation.
"""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from audit import services as audit
from cosigner import policy as engine
from cosigner import policy_changes as changes_engine
from cosigner.errors import CosignerError
from cosigner.model import COUNTED_STATES, Account, AccountPolicy, PolicyChange, Spend
from prices import store as price_store
from workers.jobs import schedule

MIN_LOOSEN_DELAY = dt.timedelta(hours=1)
LEDGER_MARGIN = dt.timedelta(days=1)   # read a day beyond the widest window; the engine cuts exactly


class PolicyChangeNotFound(CosignerError):
    code = "policy_change_not_found"


# built once (every gate decision runs both): only the parameter changes per call
_LOCK_ACCOUNT = (update(Account).where(Account.id == bindparam("account")).values(id=Account.id).returning(Account)
                 .execution_options(populate_existing=True, synchronize_session=False))
_CURRENT = (select(AccountPolicy).where(AccountPolicy.account_id == bindparam("account"))
            .order_by(AccountPolicy.version.desc()).limit(1))


def lock_account(session: Session, account_id: str) -> Account | None:
    """Serialize policy decisions and changes on one account until the transaction ends.
    Returns the account row as it is now, under the lock (one UPDATE … RETURNING; an
    instance the session loaded earlier is refreshed), or None when there is none."""
    return session.execute(_LOCK_ACCOUNT, {"account": account_id}).scalar_one_or_none()


def current(session: Session, account_id: str) -> engine.Policy:
    """The rules in force (defaults: no limits; hard fee caps always apply elsewhere)."""
    row = session.scalar(_CURRENT, {"account": account_id})
    return engine.from_dict(row.rules, row.version) if row else engine.Policy()


def _store(session: Session, account_id: str, policy: engine.Policy, actor: str, now: dt.datetime) -> engine.Policy:
    version = current(session, account_id).version + 1
    session.add(AccountPolicy(account_id=account_id, version=version, rules=engine.to_dict(policy),
                              created_by=actor, created_at=now))
    session.flush()
    audit.record(session, actor=actor, action="policy.version", subject=account_id,
                 details={"version": version}, now=now)
    return engine.from_dict(engine.to_dict(policy), version)


def set_rules(session: Session, account: Account, rules: dict, *, actor: str, now: dt.datetime,
              loosen_delay: dt.timedelta, notify, ctx=None) -> tuple[engine.Policy, PolicyChange | None]:
    """Apply what tightens now; hold what loosens for `loosen_delay` as a pending change
    (notifying the owner). Returns (policy in force, pending change or None). At most one
    change is pending per account: a new loosening supersedes the pending one (issue #14).
    The change is a privileged action (verification.privileged: `policy.loosen`,
    `policy.add_approver`, `account.unfreeze`): when the account has a verification
    channel it also waits for an out-of-band confirmation (`ctx`: CosignerContext)."""
    lock_account(session, account.id)
    old = current(session, account.id)
    new = engine.from_dict({**rules, "staff_frozen": old.staff_frozen})
    now_policy = changes_engine.tightened(old, new)
    in_force = old
    if not changes_engine.same_rules(now_policy, old):
        in_force = _store(session, account.id, now_policy, actor, now)
        _review_held(session, account, notify, now, actor)
    change = None
    if not changes_engine.same_rules(new, now_policy):
        _supersede_pending(session, account.id, actor, now)
        change = PolicyChange(id=f"pchg_{secrets.token_hex(10)}", account_id=account.id,
                              rules=engine.to_dict(new), base_rules=engine.to_dict(in_force), state="pending",
                              effective_at=now + max(loosen_delay, MIN_LOOSEN_DELAY),
                              created_by=actor, created_at=now)
        session.add(change)
        session.flush()
        schedule(session, "policy.apply", change.id, change.effective_at)
        notify(session, account.owner_device_id, "policy_change_pending", now)
        _protect(session, ctx, account, old, new, change, now)
        audit.record(session, actor=actor, action="policy.change_pending", subject=account.id,
                     details={"change": change.id, "effective_at": change.effective_at.isoformat()}, now=now)
    return in_force, change


def _protect(session: Session, ctx, account: Account, old: engine.Policy, new: engine.Policy,
             change: PolicyChange, now: dt.datetime) -> None:
    """Ask the second channel to confirm the change, naming the privileged action it is."""
    from verification import privileged, protect
    action = "policy.loosen"
    if old.frozen and not new.frozen:
        action = "account.unfreeze"
    elif new.approvals and set(new.approvals.devices) - set(old.approvals.devices if old.approvals else ()):
        action = "policy.add_approver"
    title = {"account.unfreeze": "Lift the freeze", "policy.add_approver": "Add an approver device"}.get(
        action, "Loosen the spending policy")
    rows = [[key, str(value)] for key, value in sorted(engine.to_dict(new).items())
            if value != engine.to_dict(old).get(key) and key != "staff_frozen"]
    rows.append(["Takes effect", change.effective_at.strftime("%Y-%m-%d %H:%M UTC")])
    if privileged.rule(action).oob:
        protect(session, ctx, account, action, "policy_change", change.id,
                {"title": title, "account": account.name, "rows": rows}, now)


def _supersede_pending(session: Session, account_id: str, actor: str, now: dt.datetime) -> None:
    from verification import withdraw
    for change in session.scalars(select(PolicyChange).where(PolicyChange.account_id == account_id,
                                                             PolicyChange.state == "pending")):
        change.state, change.closed_at = "superseded", now
        withdraw(session, "policy_change", change.id, now, reason="superseded")
        audit.record(session, actor=actor, action="policy.change_superseded", subject=account_id,
                     details={"change": change.id}, now=now)


def changes(session: Session, account_id: str) -> list[PolicyChange]:
    return list(session.scalars(select(PolicyChange).where(PolicyChange.account_id == account_id)
                                .order_by(PolicyChange.created_at.desc())))


def cancel_change(session: Session, account: Account, change_id: str, *, actor: str, now: dt.datetime) -> PolicyChange:
    """Cancel a pending change. Idempotent for an already cancelled one. Takes the
    account's lock before it reads the change: an apply committing meanwhile is seen (the
    change stays applied) instead of being overwritten as cancelled after the fact."""
    lock_account(session, account.id)
    change = session.get(PolicyChange, change_id, populate_existing=True)
    if change is None or change.account_id != account.id:
        raise PolicyChangeNotFound("no such policy change")
    if change.state == "pending":
        change.state, change.closed_at = "cancelled", now
        from verification import withdraw
        withdraw(session, "policy_change", change.id, now, reason="cancelled")
        audit.record(session, actor=actor, action="policy.change_cancelled", subject=account.id,
                     details={"change": change.id}, now=now)
    return change


def _review_held(session: Session, account: Account, notify, now: dt.datetime, actor: str) -> None:
    from cosigner.gate import review_held  # the gate builds on this module
    review_held(session, account, notify=notify, now=now, actor=actor)


def _base_of(session: Session, change: PolicyChange) -> dict:
    """The rules in force when `change` was asked for (stored since revision 0011; for
    older rows, the newest version not younger than the change)."""
    if change.base_rules is not None:
        return change.base_rules
    row = session.scalar(select(AccountPolicy).where(AccountPolicy.account_id == change.account_id,
                                                     AccountPolicy.created_at <= change.created_at)
                         .order_by(AccountPolicy.version.desc()).limit(1))
    return row.rules if row else engine.to_dict(engine.Policy())


def apply_change(session: Session, change_id: str, now: dt.datetime) -> bool:
    """Job handler body: apply a pending change once its time has come, as a diff onto
    the rules in force now (`policy_changes.rebase`): what was frozen, staff-frozen or tightened
    after the change was asked for stays so. A change that asked for an out-of-band
    confirmation waits for it too (the confirmation applies it when it comes later).
    Idempotent."""
    from verification import outstanding
    change = session.get(PolicyChange, change_id)
    if change is None or change.state != "pending" or change.effective_at > now:
        return False
    lock_account(session, change.account_id)
    session.refresh(change)            # what a cancel or another apply committed while we waited
    if change.state != "pending" or outstanding(session, "policy_change", change.id):
        return False
    old = engine.to_dict(current(session, change.account_id))
    rules = changes_engine.rebase(_base_of(session, change), change.rules, old)
    _store(session, change.account_id, engine.from_dict(rules), f"change:{change.id}", now)
    change.state, change.closed_at = "applied", now
    return True


def freeze(session: Session, account: Account, *, by: str, actor: str, frozen: bool, now: dt.datetime,
           loosen_delay: dt.timedelta, notify, ctx=None) -> tuple[engine.Policy, PolicyChange | None]:
    """Owner panic freeze (immediate) / unfreeze (a loosening: waits), or staff freeze and
    unfreeze (immediate both ways)."""
    lock_account(session, account.id)
    old = current(session, account.id)
    rules = engine.to_dict(old)
    if by == "staff":
        rules["staff_frozen"] = frozen
        policy = _store(session, account.id, engine.from_dict(rules), actor, now)
        if frozen:
            _review_held(session, account, notify, now, actor)
        notify(session, account.owner_device_id, "account_frozen" if frozen else "account_unfrozen", now)
        return policy, None
    rules["frozen"] = frozen
    result = set_rules(session, account, rules, actor=actor, now=now, loosen_delay=loosen_delay, notify=notify, ctx=ctx)
    if frozen:
        notify(session, account.owner_device_id, "account_frozen", now)
    return result


def ledger(session: Session, account_id: str, *, exclude: str | None = None,
           policy: engine.Policy | None = None, now: dt.datetime | None = None) -> list[engine.HistoryEntry]:
    """Counted spends (reserved or sent) as history entries for velocity limits.

    Given the `policy` and `now` it is judged with, only what its limits can see is read:
    nothing when it has no limit, else the spends decided after now minus its largest
    window (minus a day of margin; the engine applies the exact window), and only the
    three columns an entry needs. Entries decided after `now` (by a decision that took the
    lock first) are always included. Without them, every counted spend."""
    stmt = select(Spend.decided_at, Spend.external_sat, Spend.inputs).where(
        Spend.account_id == account_id, Spend.state.in_(COUNTED_STATES), Spend.decided_at.is_not(None))
    if exclude is not None:
        stmt = stmt.where(Spend.id != exclude)
    if policy is not None and now is not None:
        if not policy.limits:
            return []
        widest = max(engine.WINDOWS[lim.window] for lim in policy.limits)
        stmt = stmt.where(Spend.decided_at > now - widest - LEDGER_MARGIN)
    return [engine.HistoryEntry(at, external_sat, frozenset(f"{i['txid']}:{i['vout']}" for i in inputs))
            for at, external_sat, inputs in session.execute(stmt)]


def intent_of(inspected, sweep: bool = False) -> engine.Intent:
    return engine.Intent(tuple((o.address, o.amount_sat) for o in inspected.outputs if not o.change),
                         inspected.fee_sat, inspected.fee_rate, frozenset(inspected.outpoints), sweep)


def rates(session: Session, policy: engine.Policy, now: dt.datetime) -> dict:
    """The validated prices the policy's fiat rules need, as stored by the price refresh
    at this moment (stale ones flagged, unknown ones absent: the engine fails those rules
    closed). Empty when the policy has no fiat rule."""
    names = engine.currencies(policy)
    return price_store.rates(session, names, now) if names else {}


def decide(session: Session, account: Account, inspected, *, spend_id: str | None, now: dt.datetime,
           sweep: bool = False, lock: bool = True) -> engine.Decision:
    """Evaluate under the account lock, with the prices of `now` for fiat rules. The
    caller records the outcome in the same transaction so the reservation is atomic with
    the decision."""
    if lock:
        lock_account(session, account.id)
    policy = current(session, account.id)
    return engine.evaluate(intent_of(inspected, sweep), policy, ledger(session, account.id, exclude=spend_id, policy=policy, now=now), now,
                           rates=rates(session, policy, now))


def summary(session: Session, account: Account) -> dict:
    p = current(session, account.id)
    return {"version": p.version, "rules": engine.to_dict(p),
            "pending_changes": [c.id for c in changes(session, account.id) if c.state == "pending"]}
