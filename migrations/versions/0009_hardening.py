"""hardening (issue #14): OTP guessing budgets per email and per account

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

import store.base  # noqa: F401  (custom column types)

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('recovery_otp_budgets',
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('guesses', sa.Integer(), nullable=False),
    sa.Column('window_start', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('blocked_until', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_recovery_otp_budgets'))
    )


def downgrade():
    op.drop_table('recovery_otp_budgets')
