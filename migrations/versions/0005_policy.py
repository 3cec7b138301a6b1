"""policy engine: versioned account policies, pending changes, approvals, held spends

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

import store.base  # noqa: F401  (custom column types)

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('account_policies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_policies_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_policies')),
    sa.UniqueConstraint('account_id', 'version', name='uq_account_policies_version')
    )
    with op.batch_alter_table('account_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_policies_account_id'), ['account_id'], unique=False)

    op.create_table('policy_changes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('effective_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_policy_changes_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_changes'))
    )
    with op.batch_alter_table('policy_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_policy_changes_account_id'), ['account_id'], unique=False)

    op.create_table('spend_approvals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('spend_id', sa.String(length=40), nullable=False),
    sa.Column('approver_kind', sa.String(length=8), nullable=False),
    sa.Column('approver_id', sa.String(length=64), nullable=False),
    sa.Column('decision', sa.String(length=8), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['spend_id'], ['spends.id'], name=op.f('fk_spend_approvals_spend_id_spends')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spend_approvals')),
    sa.UniqueConstraint('spend_id', 'approver_kind', 'approver_id', name='uq_spend_approvals_once')
    )
    with op.batch_alter_table('spend_approvals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spend_approvals_spend_id'), ['spend_id'], unique=False)

    with op.batch_alter_table('spends', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signed_psbt', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('release_at', store.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('approval_expires_at', store.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('decided_at', store.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_spends_decided_at'), ['decided_at'], unique=False)


def downgrade():
    with op.batch_alter_table('spends', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spends_decided_at'))
        batch_op.drop_column('decided_at')
        batch_op.drop_column('approval_expires_at')
        batch_op.drop_column('release_at')
        batch_op.drop_column('signed_psbt')
    with op.batch_alter_table('spend_approvals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spend_approvals_spend_id'))
    op.drop_table('spend_approvals')
    with op.batch_alter_table('policy_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_policy_changes_account_id'))
    op.drop_table('policy_changes')
    with op.batch_alter_table('account_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_policies_account_id'))
    op.drop_table('account_policies')
