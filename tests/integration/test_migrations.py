"""Migrations: up from empty, same schema as the models, down again — on PostgreSQL and
on SQLite (the embedded default)."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app import models  # noqa: F401
from store.base import Base
from tests import services
from tests.dbutil import downgrade, upgrade


def schema_diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def check_round_trip(url: str) -> None:
    assert tables(url) == set()
    upgrade(url)
    assert tables(url) == set(Base.metadata.tables)
    assert schema_diff(url) == []
    downgrade(url)
    assert tables(url) == set()


def test_migrations_on_postgresql(require_postgres):
    with services.scratch_database(require_postgres, prefix="custos_migr") as url:
        check_round_trip(url)


def test_migrations_on_sqlite(tmp_path):
    check_round_trip(f"sqlite:///{tmp_path / 'm.db'}")
