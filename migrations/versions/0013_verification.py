"""out-of-band verification: owner channels, verification requests; spends.state widened
for awaiting_verification

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa

import store.base  # noqa: F401  (custom column types)

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('spends') as batch:
        batch.alter_column('state', existing_type=sa.String(length=20), type_=sa.String(length=24),
                           existing_nullable=False)
    op.create_table('verification_channels',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('email_hash', sa.String(length=64), nullable=True),
    sa.Column('kek_id', sa.String(length=32), nullable=False),
    sa.Column('wrapped_dek', sa.LargeBinary(), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.Column('code_hash', sa.String(length=200), nullable=True),
    sa.Column('code_attempts', sa.Integer(), nullable=False),
    sa.Column('code_expires_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_totp_step', sa.BigInteger(), nullable=False),
    sa.Column('effective_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('retired_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_verification_channels_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_channels'))
    )
    op.create_index('ix_verification_channels_account_kind', 'verification_channels', ['account_id', 'kind', 'state'])
    op.create_index(op.f('ix_verification_channels_email_hash'), 'verification_channels', ['email_hash'])
    op.create_table('verification_requests',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('subject_kind', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('confirmed_via', sa.String(length=8), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('view_digest', sa.String(length=64), nullable=True),
    sa.Column('confirm_digest', sa.String(length=64), nullable=True),
    sa.Column('cancel_digest', sa.String(length=64), nullable=True),
    sa.Column('totp_attempts', sa.Integer(), nullable=False),
    sa.Column('expires_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_verification_requests_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_requests')),
    sa.UniqueConstraint('view_digest', name=op.f('uq_verification_requests_view_digest'))
    )
    op.create_index('ix_verification_requests_subject', 'verification_requests', ['subject_kind', 'subject_id'])
    op.create_index(op.f('ix_verification_requests_account_id'), 'verification_requests', ['account_id'])
    op.create_index(op.f('ix_verification_requests_state'), 'verification_requests', ['state'])


def downgrade():
    op.drop_table('verification_requests')
    op.drop_table('verification_channels')
    with op.batch_alter_table('spends') as batch:
        batch.alter_column('state', existing_type=sa.String(length=24), type_=sa.String(length=20),
                           existing_nullable=False)
