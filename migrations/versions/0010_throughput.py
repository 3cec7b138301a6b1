"""throughput: one index to find a device's newest notification of a kind (push collapse)

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messaging_notifications', schema=None) as batch_op:
        batch_op.create_index('ix_messaging_notifications_device_kind_created', ['device_id', 'kind', 'created_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('messaging_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_messaging_notifications_device_kind_created')
