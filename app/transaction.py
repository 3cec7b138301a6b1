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
