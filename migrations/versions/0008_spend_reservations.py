"""spend reservations: until when a spend holds its coins; spends listed per account

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

import store.base  # noqa: F401  (custom column types)

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('spends', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reserved_until', store.base.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_spends_reserved_until'), ['reserved_until'], unique=False)
        batch_op.create_index('ix_spends_account_created', ['account_id', 'created_at', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('spends', schema=None) as batch_op:
        batch_op.drop_index('ix_spends_account_created')
        batch_op.drop_index(batch_op.f('ix_spends_reserved_until'))
        batch_op.drop_column('reserved_until')
