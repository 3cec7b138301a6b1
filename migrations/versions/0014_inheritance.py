"""inheritance: plans, pending plan changes, claims; recovery holders get a role

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa

import store.base  # noqa: F401  (custom column types)

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('recovery_holders') as batch:
        batch.add_column(sa.Column('role', sa.String(length=16), nullable=False, server_default='holder'))
    op.create_table('inheritance_plans',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('waiting_days', sa.Integer(), nullable=False),
    sa.Column('beneficiaries', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_inheritance_plans_account_id_accounts')),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_inheritance_plans'))
    )
    op.create_table('inheritance_plan_changes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('effective_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_reason', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                            name=op.f('fk_inheritance_plan_changes_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inheritance_plan_changes'))
    )
    op.create_index(op.f('ix_inheritance_plan_changes_account_id'), 'inheritance_plan_changes', ['account_id'])
    op.create_index(op.f('ix_inheritance_plan_changes_state'), 'inheritance_plan_changes', ['state'])
    op.create_table('inheritance_claims',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('setup_id', sa.String(length=40), nullable=False),
    sa.Column('holder_id', sa.String(length=40), nullable=False),
    sa.Column('beneficiary_device_id', sa.String(length=40), nullable=False),
    sa.Column('owner_device_id', sa.String(length=40), nullable=False),
    sa.Column('sealing_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('waiting_days', sa.Integer(), nullable=False),
    sa.Column('wait_ends_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_reminder_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminders_sent', sa.Integer(), nullable=False),
    sa.Column('challenge', sa.LargeBinary(length=32), nullable=False),
    sa.Column('released_share', sa.LargeBinary(), nullable=True),
    sa.Column('released_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('proven_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('destination_account_id', sa.String(length=40), nullable=True),
    sa.Column('sweep_spend_id', sa.String(length=40), nullable=True),
    sa.Column('sweep_txid', sa.String(length=64), nullable=True),
    sa.Column('closed_reason', sa.String(length=64), nullable=True),
    sa.Column('closed_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('history', sa.JSON(), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_inheritance_claims_account_id_accounts')),
    sa.ForeignKeyConstraint(['beneficiary_device_id'], ['devices.id'],
                            name=op.f('fk_inheritance_claims_beneficiary_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inheritance_claims'))
    )
    op.create_index(op.f('ix_inheritance_claims_account_id'), 'inheritance_claims', ['account_id'])
    op.create_index(op.f('ix_inheritance_claims_beneficiary_device_id'), 'inheritance_claims',
                    ['beneficiary_device_id'])
    op.create_index(op.f('ix_inheritance_claims_state'), 'inheritance_claims', ['state'])


def downgrade():
    op.drop_table('inheritance_claims')
    op.drop_table('inheritance_plan_changes')
    op.drop_table('inheritance_plans')
    with op.batch_alter_table('recovery_holders') as batch:
        batch.drop_column('role')
