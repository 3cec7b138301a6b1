"""`committing()`: the request's unit of work. Commits the Flask-SQLAlchemy session when
the block succeeds, rolls back on any exception (no partial state change)."""
import contextlib

from app.extensions import db


@contextlib.contextmanager
def committing():
    try:
        yield db.session
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
