"""PostgreSQL connections: a transaction that wrote nothing ends with COMMIT, not
ROLLBACK; a pooled connection is checked for life without a round trip.

**Read-only transactions commit.**

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

**Liveness at checkout without a query.** SQLAlchemy's `pool_pre_ping` sends `SELECT 1`
each time a connection leaves the pool, which is once per request: one more round trip,
and the first statement of the transaction. Instead, `check_alive` looks at the socket
(`poll` with a zero timeout). An idle connection in the pool has nothing to read. If
its socket is readable, the server closed it (a restart, `pg_terminate_backend`,
`idle_session_timeout`) or sent something unasked (the termination notice): the pool
discards it and connects afresh, before the request runs anything. Issue #19: about 7%
of the API's CPU per message and 10% of the backends' on PostgreSQL. A path that died
without a word (no FIN from a vanished host) is not seen here. Neither does `SELECT 1`
see it in time: it waits for TCP's timeout too. The statement then fails with a
disconnect error, and SQLAlchemy invalidates the pool.

Both are installed by `install(engine)`; idempotent.
"""
from __future__ import annotations

import select

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

_WROTE = "custos.wrote"          # Connection.info: a statement other than SELECT was sent


def _note_statement(conn, _cursor, statement: str, _params, _context, _executemany) -> None:
    if _WROTE not in conn.info and statement.lstrip()[:6].upper() != "SELECT":
        conn.info[_WROTE] = True


def _end_read_only(conn) -> None:
    """Runs just before SQLAlchemy rolls a transaction back: one that wrote nothing and
    is not in an error state is committed instead (the rollback that follows then finds
    no transaction and sends nothing). If the COMMIT fails (the connection was lost),
    the rollback goes ahead as if this hook were not there: SQLAlchemy reports and
    handles its error (a lost connection invalidates the pool)."""
    from psycopg.pq import TransactionStatus       # psycopg is loaded: this is its connection
    wrote = conn.info.pop(_WROTE, False)
    raw = conn.connection.dbapi_connection
    if not wrote and raw is not None and raw.info.transaction_status == TransactionStatus.INTRANS:
        try:
            raw.commit()
        except Exception:                         # noqa: BLE001 — the rollback reports it
            return


def _forget(conn) -> None:
    conn.info.pop(_WROTE, None)


def check_alive(dbapi_connection, _record, _proxy) -> None:
    """Pool checkout: raise DisconnectionError (the pool then connects afresh, up to 3
    times) when the connection is closed, broken or its socket is readable."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise exc.DisconnectionError("connection closed")
    try:
        poller = select.poll()                    # poll, not select: no limit on the fd's number
        poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
        readable = poller.poll(0)
    except Exception as err:                      # no socket any more (psycopg raises its own)
        raise exc.DisconnectionError("connection has no socket") from err
    if readable:
        raise exc.DisconnectionError("the server closed or spoke on an idle connection")


def install(engine: Engine) -> None:
    """On a PostgreSQL (psycopg) engine: transactions that wrote nothing end with COMMIT,
    and checkouts are checked by `check_alive` (see the module docstring). Other engines
    are left alone. Idempotent."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return
    if event.contains(engine, "before_cursor_execute", _note_statement):
        return
    event.listen(engine, "before_cursor_execute", _note_statement)
    event.listen(engine, "rollback", _end_read_only)
    event.listen(engine, "commit", _forget)
    event.listen(engine, "checkout", check_alive)
