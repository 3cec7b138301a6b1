"""chain: the mempool feed (Core's ZMQ `sequence` notifications) and the follower's cursor

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa

import store.base  # noqa: F401  (custom column types)

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('chain_mempool_feed',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('listener', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=1), nullable=False),
    sa.Column('txid', sa.String(length=64), nullable=True),
    sa.Column('mempool_seq', sa.BigInteger(), nullable=True),
    sa.Column('received_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_mempool_feed')),
    sqlite_autoincrement=True
    )
    op.create_table('chain_mempool_cursor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('listener', sa.String(length=32), nullable=True),
    sa.Column('feed_id', sa.BigInteger(), nullable=False),
    sa.Column('mempool_seq', sa.BigInteger(), nullable=True),
    sa.Column('synced_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_mempool_cursor'))
    )


def downgrade():
    op.drop_table('chain_mempool_cursor')
    op.drop_table('chain_mempool_feed')
