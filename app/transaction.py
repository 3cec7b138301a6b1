"""`committing()`: the request's unit of work. Commits the Flask-SQLAlchemy session when
the block succeeds, rolls back on any exception (no partial state change)."""
import contextlib

from flask import g

from app.extensions import db


@contextlib.contextmanager
def committing():
    """Inside an @idempotent view the outer scope commits (with the stored response)."""
    try:
        yield db.session
        if g.get("defer_commit"):
            db.session.flush()
        else:
            db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


@contextlib.contextmanager
def attempting():
    """A step whose failure undoes only itself and propagates: its own transaction, or —
    inside an @idempotent view, where the request's transaction stays open until the
    response is stored — a savepoint in it (a failure must not roll back what the view
    already did). A SAVEPOINT is not used otherwise: on SQLite it would open a read
    snapshot that a slow step (a bitcoind call) lets go stale, and the write after it
    fails with "database is locked"."""
    if g.get("defer_commit"):
        with db.session.begin_nested():
            yield db.session
        db.session.flush()
    else:
        with committing():
            yield db.session
