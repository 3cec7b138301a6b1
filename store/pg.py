"""PostgreSQL: a transaction that wrote nothing ends with COMMIT, not ROLLBACK.

psycopg prepares a statement on the server after its 5th execution on a connection and
then sends only its parameters. But every `rollback()` drops all of them (psycopg
clears its cache and sends DEALLOCATE ALL, in case the rollback undid DDL they depend
on). Most requests only read (a fetch, `GET /v1/devices/me`, a refused signature): the
session closes them with a rollback, so the connection's statements were parsed and
planned afresh all the time. For a transaction that wrote nothing, COMMIT and ROLLBACK
have the same effect (row locks and transaction-scoped advisory locks go with either).
COMMIT keeps the prepared statements. Issue #19: the PostgreSQL backends' CPU per
request fell by about 40% (bench/request_cost.py on PostgreSQL + Redis, backend CPU
sampled).

"Wrote nothing" means every statement the transaction sent through SQLAlchemy began
with SELECT. Anything else (INSERT, UPDATE, DELETE, SAVEPOINT, DDL, a WITH) counts as a
write, so the transaction rolls back as usual. So does a transaction in an error state.
A SELECT that writes (a function with side effects) would be committed: Custos has
none. Keep it that way, or send such a call as something other than a bare SELECT.
Idempotent: installing twice adds nothing.
"""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine

_WROTE = "custos.wrote"          # Connection.info: a statement other than SELECT was sent


def _note_statement(conn, _cursor, statement: str, _params, _context, _executemany) -> None:
    if _WROTE not in conn.info and statement.lstrip()[:6].upper() != "SELECT":
        conn.info[_WROTE] = True


def _end_read_only(conn) -> None:
    """Runs just before SQLAlchemy rolls a transaction back: one that wrote nothing and
    is not in an error state is committed instead (the rollback that follows then finds
    no transaction and sends nothing)."""
    wrote = conn.info.pop(_WROTE, False)
    raw = conn.connection.dbapi_connection
    if not wrote and raw is not None and raw.info.transaction_status == _INTRANS:
        raw.commit()


def _forget(conn) -> None:
    conn.info.pop(_WROTE, None)


_INTRANS = None                  # psycopg's TransactionStatus.INTRANS (psycopg imported on use)


def install_read_only_commit(engine: Engine) -> None:
    """On a PostgreSQL (psycopg) engine, end transactions that wrote nothing with COMMIT
    (see the module docstring). Other engines are left alone."""
    global _INTRANS
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return
    if event.contains(engine, "before_cursor_execute", _note_statement):
        return
    from psycopg.pq import TransactionStatus
    _INTRANS = TransactionStatus.INTRANS
    event.listen(engine, "before_cursor_execute", _note_statement)
    event.listen(engine, "rollback", _end_read_only)
    event.listen(engine, "commit", _forget)
