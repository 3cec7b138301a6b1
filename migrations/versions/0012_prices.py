"""prices: the current validated BTC price per currency and a daily history

Revision ID: 0012
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

import store.base  # noqa: F401  (custom column types)

revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('prices_current',
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('price', sa.String(length=40), nullable=True),
    sa.Column('as_of', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('valid_until', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('discarded', sa.JSON(), nullable=False),
    sa.Column('checked_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('problem', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('currency', name=op.f('pk_prices_current'))
    )
    op.create_table('prices_daily',
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('price', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('as_of', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('currency', 'day', name=op.f('pk_prices_daily'))
    )


def downgrade():
    op.drop_table('prices_daily')
    op.drop_table('prices_current')
