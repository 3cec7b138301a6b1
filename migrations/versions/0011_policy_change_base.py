"""policy changes remember the rules they were made against (applied as a diff)

Revision ID: 0011
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('policy_changes') as batch:
        batch.add_column(sa.Column('base_rules', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('policy_changes') as batch:
        batch.drop_column('base_rules')
