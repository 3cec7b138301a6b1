"""recovery: a replacement of the recovery setup waits (pending changes, sealed)

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa

import store.base  # noqa: F401  (custom column types)

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('recovery_setup_changes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('kek_id', sa.String(length=32), nullable=False),
    sa.Column('wrapped_dek', sa.LargeBinary(), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('effective_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_reason', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_recovery_setup_changes_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_setup_changes'))
    )
    op.create_index(op.f('ix_recovery_setup_changes_account_id'), 'recovery_setup_changes', ['account_id'])
    op.create_index(op.f('ix_recovery_setup_changes_state'), 'recovery_setup_changes', ['state'])


def downgrade():
    op.drop_index(op.f('ix_recovery_setup_changes_state'), table_name='recovery_setup_changes')
    op.drop_index(op.f('ix_recovery_setup_changes_account_id'), table_name='recovery_setup_changes')
    op.drop_table('recovery_setup_changes')
