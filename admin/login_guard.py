"""Console login throttles, checked before any password hash is computed.

Three budgets, all in the rate limiter's storage (Redis when configured, so every API
process shares them) and all keyed by the submitted username whether or not it exists —
an unknown username is throttled exactly like a real one, so the answers never tell
them apart (issue #14, L7):

- per client IP, every attempt (`RATELIMIT_CONSOLE_LOGIN_IP`, 30/minute): bounds the
  argon2 work one address can cause (M4);
- per client IP and username, failures (`RATELIMIT_CONSOLE_LOGIN_PAIR`, 5 per 15
  minutes): the guesser at one address is slowed down; a member logging in from their
  own address is not affected by anyone else's failures;
- per username, failures from every address (`RATELIMIT_CONSOLE_LOGIN_USER`, 100/hour):
  bounds distributed guessing; when it trips, staff are told through the audit log
  (`staff.login_throttled`, once per window). An address the member logged in from
  successfully within KNOWN_FOR keeps its own budget, so a distributed attack cannot
  shut a member out of the console from their usual address.

Wrong passwords never lock an account (anyone could lock any member remotely); the
lockout in admin.services applies to wrong second-factor codes, which need the password.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import parse

KNOWN_FOR = "1000000 per 30 days"      # an address a member logged in from is known this long


@dataclass(frozen=True)
class LoginLimits:
    per_ip: str = "30/minute"
    per_pair: str = "5 per 15 minutes"
    per_user: str = "100/hour"


def normalize(username: str | None) -> str:
    """The key a submitted username is counted under (bounded, case-folded)."""
    return (username or "").strip().lower()[:64]


class LoginGuard:
    """`strategy` is a `limits` rate limiter (fixed window) over Redis or memory storage."""

    def __init__(self, strategy, limits: LoginLimits = LoginLimits(), enabled: bool = True):
        self._s, self.enabled = strategy, enabled
        self._ip, self._pair, self._user = parse(limits.per_ip), parse(limits.per_pair), parse(limits.per_user)
        self._notice = type(self._user)(1, self._user.multiples)   # one notice per per_user window
        self._known = parse(KNOWN_FOR)

    def _wait(self, item, *keys) -> int:
        reset_at, _remaining = self._s.get_window_stats(item, "console-login", *keys)
        return max(1, math.ceil(reset_at - time.time()))

    def before(self, ip: str, username: str) -> int | None:
        """Count this attempt against the IP; None to go on, else seconds to wait. Checked
        before any argon2 work; nothing is revealed about the username."""
        if not self.enabled:
            return None
        user = normalize(username)
        if not self._s.hit(self._ip, "console-login", "ip", ip):
            return self._wait(self._ip, "ip", ip)
        if not self._s.test(self._pair, "console-login", "pair", ip, user):
            return self._wait(self._pair, "pair", ip, user)
        if not self._s.test(self._user, "console-login", "user", user) and not self._known_pair(ip, user):
            return self._wait(self._user, "user", user)
        return None

    def _known_pair(self, ip: str, user: str) -> bool:
        return self._s.get_window_stats(self._known, "console-login", "known", ip, user)[1] < self._known.amount

    def failed(self, ip: str, username: str) -> bool:
        """Count a failed password. Returns True for the failure that used up the
        username's budget across all addresses, once per window (the caller tells staff)."""
        if not self.enabled:
            return False
        user = normalize(username)
        self._s.hit(self._pair, "console-login", "pair", ip, user)
        self._s.hit(self._user, "console-login", "user", user)
        if self._s.test(self._user, "console-login", "user", user):
            return False
        return self._s.hit(self._notice, "console-login", "user-notice", user)

    def succeeded(self, ip: str, username: str) -> None:
        """A right password: forget this address's failures for the username."""
        if self.enabled:
            user = normalize(username)
            self._s.clear(self._pair, "console-login", "pair", ip, user)
            self._s.hit(self._known, "console-login", "known", ip, user)
