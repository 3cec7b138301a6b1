"""Extension points of the spend flow, filled by other packages (the recovery sweep).

- `signer_role(session, account)`: whose signature a spend of this account must carry
  besides the server's: "platform" normally; the recovery package returns "recovery"
  for an account in recovery-sweep mode.
- `check_submit(session, account, intent, now)`: every registered guard may refuse an
  inspected spend (raise cosigner.errors.PsbtRejected with a code) before policy and
  signing; e.g. sweep mode refuses anything but a sweep to the new owner's account.
- `is_sweep(session, account, intent)`: True when this spend is the recovery sweep
  (the policy engine lets it through a freeze).
- `check_build(session, account)`: every registered guard may refuse to build a normal
  spend at all (raise a CosignerError with a code); e.g. an account in recovery-sweep
  mode refuses with `sweep_mode` before any coin is reserved.
- `policy_rule(session, account, intent, now)`: a registered rule may decide a spend
  instead of the account's policy (returns a cosigner.policy.Decision, or None to let
  the policy decide); e.g. the inheritance sweep is decided by its own
  `inheritance_sweep` rule (a freeze denies it; the owner's limits do not apply).

Registration happens at import time of the registering module (`register_*`).

A registering module's own lookup (e.g. "is this account in sweep mode?") may answer
through `memoized()`: inside a `memo(session)` block — the signing gate's one decision,
under the account's lock, where nothing changes those modes — each lookup runs one query
for all the hooks that ask it; outside a block it simply runs.
"""
from __future__ import annotations

import contextlib
from typing import Callable

_MEMO = "cosigner.hooks.memo"

_signer_roles: list[Callable] = []
_submit_guards: list[Callable] = []
_sweep_checks: list[Callable] = []
_build_guards: list[Callable] = []
_policy_rules: list[Callable] = []


def register_signer_role(fn: Callable) -> Callable:
    _signer_roles.append(fn)
    return fn


def register_submit_guard(fn: Callable) -> Callable:
    _submit_guards.append(fn)
    return fn


def register_sweep_check(fn: Callable) -> Callable:
    _sweep_checks.append(fn)
    return fn


def register_build_guard(fn: Callable) -> Callable:
    _build_guards.append(fn)
    return fn


def register_policy_rule(fn: Callable) -> Callable:
    _policy_rules.append(fn)
    return fn


@contextlib.contextmanager
def memo(session):
    """Answer `memoized()` lookups once each until the block ends (not re-entrant: an
    inner block shares the outer one's answers and leaves them to it)."""
    if _MEMO in session.info:
        yield
        return
    session.info[_MEMO] = {}
    try:
        yield
    finally:
        session.info.pop(_MEMO, None)


def memoized(session, key, lookup: Callable):
    """`lookup()`, or inside a `memo(session)` block its first answer for `key`."""
    answers = session.info.get(_MEMO)
    if answers is None:
        return lookup()
    if key not in answers:
        answers[key] = lookup()
    return answers[key]


def policy_rule(session, account, intent, now):
    """The first registered rule's Decision for this spend, or None (the policy decides)."""
    for fn in _policy_rules:
        decision = fn(session, account, intent, now)
        if decision is not None:
            return decision
    return None


def check_build(session, account) -> None:
    for fn in _build_guards:
        fn(session, account)


def signer_role(session, account) -> str:
    for fn in _signer_roles:
        role = fn(session, account)
        if role:
            return role
    return "platform"


def check_submit(session, account, intent, now) -> None:
    for fn in _submit_guards:
        fn(session, account, intent, now)


def is_sweep(session, account, intent) -> bool:
    return any(fn(session, account, intent) for fn in _sweep_checks)
