"""Set queries of the chain index, written once for PostgreSQL and SQLite.

PostgreSQL gets one array parameter per set (`= ANY(:values)`), whatever its size;
SQLite gets `IN (...)` in chunks below its bound-parameter limit. Inserts that may
meet an existing row (`insert_scripts`, `insert_ignore`) are ON CONFLICT DO NOTHING.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from sqlalchemy import any_, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from chain.model import Coin, WatchedScript

SQLITE_CHUNK = 900


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def chunks(values: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def member(session: Session, column, values: list):
    """[(condition, ...)] covering `values`: one `= ANY` on PostgreSQL, IN chunks else."""
    if is_postgres(session):
        param = bindparam(f"v_{column.key}", values, type_=postgresql.ARRAY(column.type))
        return [column == any_(param)]
    return [column.in_(list(part)) for part in chunks(values, SQLITE_CHUNK)]


def match_scripts(session: Session, scripts: list[bytes]) -> dict[bytes, tuple[str, int, int]]:
    """{script: (account_id, branch, index)} for the watched ones among `scripts`."""
    out: dict[bytes, tuple[str, int, int]] = {}
    if not scripts:
        return out
    cols = (WatchedScript.script, WatchedScript.account_id, WatchedScript.branch, WatchedScript.index)
    for cond in member(session, WatchedScript.script, list(set(scripts))):
        for spk, acct, branch, index in session.execute(select(*cols).where(cond)):
            out[bytes(spk)] = (acct, branch, index)
    return out


def coins_of_txids(session: Session, txids: list[str], *, for_update: bool = False) -> list[Coin]:
    """Every coin created by one of `txids` (callers filter by vout)."""
    rows: list[Coin] = []
    if not txids:
        return rows
    for cond in member(session, Coin.txid, list(set(txids))):
        stmt = select(Coin).where(cond)
        if for_update:
            stmt = stmt.with_for_update()
        rows.extend(session.scalars(stmt))
    return rows


def select_in(session: Session, model, column, values: list, *, for_update: bool = False,
              order_by=()) -> list:
    """ORM rows of `model` whose `column` is in `values` (set query, see `member`)."""
    rows: list = []
    if not values:
        return rows
    for cond in member(session, column, list(set(values))):
        stmt = select(model).where(cond)
        if order_by:
            stmt = stmt.order_by(*order_by)
        if for_update:
            stmt = stmt.with_for_update()
        rows.extend(session.scalars(stmt))
    return rows


def delete_in(session: Session, model, column, values: list) -> None:
    """DELETE the rows of `model` whose `column` is in `values` (set query, see `member`)."""
    if not values:
        return
    for cond in member(session, column, list(set(values))):
        session.execute(delete(model).where(cond))


def coins_spent_by(session: Session, txids: list[str]) -> list[Coin]:
    rows: list[Coin] = []
    if not txids:
        return rows
    for cond in member(session, Coin.spent_by_txid, list(set(txids))):
        rows.extend(session.scalars(select(Coin).where(cond)))
    return rows


_INSERT_IGNORE: dict[tuple[str, str], object] = {}     # (dialect, table) -> the statement, built once


def insert_ignore(session: Session, model, rows: list[dict]) -> int:
    """INSERT … ON CONFLICT DO NOTHING for `rows` (executemany). Returns len(rows)."""
    if not rows:
        return 0
    conn = session.connection()
    key = (conn.dialect.name, model.__tablename__)
    stmt = _INSERT_IGNORE.get(key)
    if stmt is None:
        dialect = postgresql if key[0] == "postgresql" else sqlite
        stmt = _INSERT_IGNORE[key] = dialect.insert(model.__table__).on_conflict_do_nothing()
    conn.execute(stmt, rows)
    return len(rows)


def insert_scripts(session: Session, rows: list[dict]) -> int:
    return insert_ignore(session, WatchedScript, rows)


def mark_scripts_used(session: Session, scripts: list[bytes]) -> None:
    for cond in member(session, WatchedScript.script, list(set(scripts))):
        session.execute(update(WatchedScript).where(cond, WatchedScript.used.is_(False)).values(used=True))
