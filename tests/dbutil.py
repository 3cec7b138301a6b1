"""Migrate and clean test databases."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations with the same scripts `make run` uses (through a throwaway app)."""
    _with_app(url, lambda: __import__("flask_migrate").upgrade(revision=revision))


def downgrade(url: str, revision: str = "base") -> None:
    _with_app(url, lambda: __import__("flask_migrate").downgrade(revision=revision))


def _with_app(url: str, fn) -> None:
    from app import create_app
    from app.extensions import db
    from tests.conftest import make_settings
    app = create_app(make_settings(url, None, "sqla+sqlite:///:memory:"))
    with app.app_context():
        try:
            fn()
        finally:
            db.session.remove()
            db.engine.dispose()


def truncate_all(url: str) -> None:
    from store.base import Base
    from app import models  # noqa: F401
    from store.session import engine_for
    engine = engine_for(url)
    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
        else:
            for t in reversed(tables):
                conn.execute(text(f'DELETE FROM "{t}"'))
