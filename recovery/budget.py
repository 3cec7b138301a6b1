"""OTP guessing budgets that outlive a case: wrong-code guesses are counted per email
(keyed by its HMAC, so unknown addresses and their decoy cases count the same way) and
per account, across every case and every API process.

Each key allows OTP_GUESS_BUDGET guesses; the guess that spends the budget starts a
cool-down of OTP_COOLDOWN_BASE · 2^level (capped at OTP_COOLDOWN_MAX), and the level
grows with each cool-down until OTP_LEVEL_MEMORY passes without one. A right code
clears the keys. During a cool-down nothing is evaluated, and the answer is the same for
known and unknown emails (429 with Retry-After): the requester learns nothing new.

Two stores behind one interface, like the nonce store: Redis (one Lua script, atomic
across keys, shared by every process) when REDIS_URL is set, the database otherwise
(`recovery_otp_budgets`, rows locked in the caller's transaction; SQLite's write lock is
taken by the upsert before the row is read, so concurrent guesses serialize there too).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.base import Base, UTCDateTime

OTP_GUESS_BUDGET = 10                          # wrong guesses per key before a cool-down
OTP_GUESS_WINDOW = dt.timedelta(hours=24)      # guesses older than this are forgotten
OTP_COOLDOWN_BASE = dt.timedelta(hours=1)      # first cool-down; doubles per level
OTP_COOLDOWN_MAX = dt.timedelta(hours=24)
OTP_LEVEL_MEMORY = dt.timedelta(days=7)        # a quiet week resets the level


class OtpBudget(Base):
    __tablename__ = "recovery_otp_budgets"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)      # "email:<hmac>" / "account:<id>"
    guesses: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    level: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


def keys_for(email_hash: str, account_id: str | None) -> list[str]:
    return [f"email:{email_hash}"] + ([f"account:{account_id}"] if account_id else [])


def cooldown(level: int) -> dt.timedelta:
    return min(OTP_COOLDOWN_BASE * 2 ** min(level, 16), OTP_COOLDOWN_MAX)


class GuessBudget:
    """Interface. `reserve` counts one guess against every key and returns None, or —
    during a cool-down of any key — counts nothing and returns the seconds left.
    `clear` forgets the keys (after a right code)."""

    def reserve(self, session: Session, keys: list[str], now: dt.datetime) -> int | None:
        raise NotImplementedError

    def clear(self, session: Session, keys: list[str]) -> None:
        raise NotImplementedError


class SqlGuessBudget(GuessBudget):
    """In the caller's transaction (the caller commits wrong guesses too)."""

    def reserve(self, session, keys, now):
        rows = [self._locked(session, key, now) for key in sorted(keys)]
        waits = [r.blocked_until - now for r in rows if r.blocked_until is not None and r.blocked_until > now]
        if waits:
            return max(1, int(max(waits).total_seconds() + 0.999))
        for r in rows:
            if now - r.window_start > OTP_GUESS_WINDOW:
                r.guesses, r.window_start = 0, now
            if r.blocked_until is not None and now - r.blocked_until > OTP_LEVEL_MEMORY:
                r.level = 0
            r.guesses += 1
            if r.guesses >= OTP_GUESS_BUDGET:
                r.blocked_until, r.level, r.guesses, r.window_start = now + cooldown(r.level), r.level + 1, 0, now
        session.flush()
        return None

    @staticmethod
    def _locked(session, key, now) -> OtpBudget:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        session.execute(insert(OtpBudget).values(key=key, guesses=0, window_start=now, level=0)
                        .on_conflict_do_nothing(index_elements=["key"]))
        return session.scalars(select(OtpBudget).where(OtpBudget.key == key).with_for_update()
                               .execution_options(populate_existing=True)).one()

    def clear(self, session, keys):
        session.execute(delete(OtpBudget).where(OtpBudget.key.in_(keys)))


_RESERVE = """
local now, budget, window, base, cap, memory = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local wait = 0
for _, k in ipairs(KEYS) do
  local b = tonumber(redis.call('HGET', k, 'b') or '0')
  if b - now > wait then wait = b - now end
end
if wait > 0 then return math.ceil(wait) end
for _, k in ipairs(KEYS) do
  local h = redis.call('HMGET', k, 'g', 'w', 'l', 'b')
  local g, w, l, b = tonumber(h[1] or '0'), tonumber(h[2] or ARGV[1]), tonumber(h[3] or '0'), tonumber(h[4] or '0')
  if now - w > window then g = 0; w = now end
  if b > 0 and now - b > memory then l = 0 end
  g = g + 1
  if g >= budget then b = now + math.min(base * 2 ^ math.min(l, 16), cap); l = l + 1; g = 0; w = now end
  redis.call('HSET', k, 'g', g, 'w', w, 'l', l, 'b', b)
  redis.call('EXPIRE', k, math.ceil(memory + cap + window))
end
return 0
"""


class RedisGuessBudget(GuessBudget):
    """One script call per guess; keys share a hash tag so a cluster keeps them together."""

    def __init__(self, client, prefix: str = "custos:{otp-budget}:"):
        self._redis, self._prefix = client, prefix
        self._script = client.register_script(_RESERVE)

    def reserve(self, session, keys, now):
        wait = self._script(keys=[self._prefix + k for k in sorted(keys)], args=[
            now.timestamp(), OTP_GUESS_BUDGET, OTP_GUESS_WINDOW.total_seconds(), OTP_COOLDOWN_BASE.total_seconds(),
            OTP_COOLDOWN_MAX.total_seconds(), OTP_LEVEL_MEMORY.total_seconds()])
        return int(wait) or None

    def clear(self, session, keys):
        self._redis.delete(*(self._prefix + k for k in keys))


def budget_from_settings(settings) -> GuessBudget:
    from config.bootstrap import redis_client
    client = redis_client(settings)
    return RedisGuessBudget(client) if client is not None else SqlGuessBudget()
