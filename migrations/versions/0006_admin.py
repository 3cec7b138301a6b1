"""admin console: staff members, console sessions, scoped API tokens

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

import store.base  # noqa: F401  (custom column types)

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('staff_members',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('display_name', sa.String(length=80), nullable=True),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('totp_kek_id', sa.String(length=32), nullable=True),
    sa.Column('totp_wrapped_dek', sa.LargeBinary(), nullable=True),
    sa.Column('totp_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('totp_enrolled_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('totp_generation', sa.Integer(), nullable=False),
    sa.Column('last_totp_step', sa.BigInteger(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_members'))
    )
    op.create_table('staff_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.String(length=32), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_members.id'], name=op.f('fk_staff_sessions_staff_id_staff_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions'))
    )
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_sessions_staff_id'), ['staff_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_sessions_ended_at'), ['ended_at'], unique=False)

    op.create_table('staff_tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('staff_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_members.id'], name=op.f('fk_staff_tokens_staff_id_staff_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_tokens')),
    sa.UniqueConstraint('digest', name=op.f('uq_staff_tokens_digest'))
    )
    with op.batch_alter_table('staff_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_tokens_staff_id'), ['staff_id'], unique=False)


def downgrade():
    with op.batch_alter_table('staff_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_tokens_staff_id'))
    op.drop_table('staff_tokens')
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_sessions_ended_at'))
        batch_op.drop_index(batch_op.f('ix_staff_sessions_staff_id'))
    op.drop_table('staff_sessions')
    op.drop_table('staff_members')
