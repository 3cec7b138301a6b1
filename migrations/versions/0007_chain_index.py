"""chain index: watched scripts for every account, blocks seen, coins, account
transactions, the known mempool, restores; the per-wallet watcher's seen_transactions
goes (chain_account_txs replaces it)

Revision ID: 0007
Revises: 0011 (the signing gate's policy_changes.base_rules; numbered 0007 for the chain-index work)
"""
from alembic import op
import sqlalchemy as sa

import store.base  # noqa: F401  (custom column types)

revision = '0007'
down_revision = '0011'
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.drop_table('seen_transactions')
    op.create_table('chain_branches',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('branch', sa.Integer(), nullable=False),
    sa.Column('descriptor', sa.Text(), nullable=False),
    sa.Column('ranged', sa.Boolean(), nullable=False),
    sa.Column('derived_to', sa.Integer(), nullable=False),
    sa.Column('highest_used', sa.Integer(), nullable=True),
    sa.Column('next_index', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_chain_branches_account_id_accounts')),
    sa.PrimaryKeyConstraint('account_id', 'branch', name=op.f('pk_chain_branches'))
    )
    op.create_table('chain_scripts',
    sa.Column('script', sa.LargeBinary(), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('branch', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('used', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_chain_scripts_account_id_accounts')),
    sa.PrimaryKeyConstraint('script', name=op.f('pk_chain_scripts')),
    sa.UniqueConstraint('account_id', 'branch', 'index', name='uq_chain_scripts_slot')
    )
    op.create_table('chain_blocks',
    sa.Column('height', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('applied_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('height', name=op.f('pk_chain_blocks')),
    sa.UniqueConstraint('hash', name=op.f('uq_chain_blocks_hash'))
    )
    op.create_table('chain_coins',
    sa.Column('txid', sa.String(length=64), nullable=False),
    sa.Column('vout', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('amount_sat', sa.BigInteger(), nullable=False),
    sa.Column('script', sa.LargeBinary(), nullable=False),
    sa.Column('branch', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('coinbase', sa.Boolean(), nullable=False),
    sa.Column('own_change', sa.Boolean(), nullable=False),
    sa.Column('block_height', sa.Integer(), nullable=True),
    sa.Column('block_hash', sa.String(length=64), nullable=True),
    sa.Column('spent_by_txid', sa.String(length=64), nullable=True),
    sa.Column('spent_height', sa.Integer(), nullable=True),
    sa.Column('spent_block_hash', sa.String(length=64), nullable=True),
    sa.Column('reserved_by', sa.String(length=40), nullable=True),
    sa.Column('reserved_until', store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_seen', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_chain_coins_account_id_accounts')),
    sa.PrimaryKeyConstraint('txid', 'vout', name=op.f('pk_chain_coins'))
    )
    with op.batch_alter_table('chain_coins', schema=None) as batch_op:
        batch_op.create_index('ix_chain_coins_account_unspent', ['account_id', 'spent_by_txid'], unique=False)
        batch_op.create_index(batch_op.f('ix_chain_coins_block_hash'), ['block_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_chain_coins_spent_by_txid'), ['spent_by_txid'], unique=False)
        batch_op.create_index(batch_op.f('ix_chain_coins_spent_block_hash'), ['spent_block_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_chain_coins_reserved_by'), ['reserved_by'], unique=False)

    op.create_table('chain_account_txs',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('txid', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('block_height', sa.Integer(), nullable=True),
    sa.Column('block_hash', sa.String(length=64), nullable=True),
    sa.Column('block_pos', sa.Integer(), nullable=True),
    sa.Column('block_time', sa.BigInteger(), nullable=True),
    sa.Column('received_sat', sa.BigInteger(), nullable=False),
    sa.Column('sent_sat', sa.BigInteger(), nullable=False),
    sa.Column('net_sat', sa.BigInteger(), nullable=False),
    sa.Column('fee_sat', sa.BigInteger(), nullable=True),
    sa.Column('replaced_by', sa.String(length=64), nullable=True),
    sa.Column('first_seen', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_chain_account_txs_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_account_txs')),
    sa.UniqueConstraint('account_id', 'txid', name='uq_chain_account_txs_tx')
    )
    with op.batch_alter_table('chain_account_txs', schema=None) as batch_op:
        batch_op.create_index('ix_chain_account_txs_history', ['account_id', 'block_height', 'block_pos'], unique=False)
        batch_op.create_index('ix_chain_account_txs_state', ['state', 'block_height'], unique=False)
        batch_op.create_index(batch_op.f('ix_chain_account_txs_txid'), ['txid'], unique=False)
        batch_op.create_index(batch_op.f('ix_chain_account_txs_block_hash'), ['block_hash'], unique=False)

    op.create_table('chain_mempool',
    sa.Column('txid', sa.String(length=64), nullable=False),
    sa.Column('relevant', sa.Boolean(), nullable=False),
    sa.Column('seen_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('txid', name=op.f('pk_chain_mempool'))
    )
    op.create_table('chain_restores',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=True),
    sa.Column('start_height', sa.Integer(), nullable=True),
    sa.Column('stop_height', sa.Integer(), nullable=True),
    sa.Column('next_height', sa.Integer(), nullable=True),
    sa.Column('blocks_found', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=200), nullable=True),
    sa.Column('created_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_chain_restores_account_id_accounts')),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_chain_restores'))
    )


def downgrade():
    op.drop_table('chain_restores')
    op.drop_table('chain_mempool')
    with op.batch_alter_table('chain_account_txs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chain_account_txs_block_hash'))
        batch_op.drop_index(batch_op.f('ix_chain_account_txs_txid'))
        batch_op.drop_index('ix_chain_account_txs_state')
        batch_op.drop_index('ix_chain_account_txs_history')
    op.drop_table('chain_account_txs')
    with op.batch_alter_table('chain_coins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chain_coins_reserved_by'))
        batch_op.drop_index(batch_op.f('ix_chain_coins_spent_block_hash'))
        batch_op.drop_index(batch_op.f('ix_chain_coins_spent_by_txid'))
        batch_op.drop_index(batch_op.f('ix_chain_coins_block_hash'))
        batch_op.drop_index('ix_chain_coins_account_unspent')
    op.drop_table('chain_coins')
    op.drop_table('chain_blocks')
    op.drop_table('chain_scripts')
    op.drop_table('chain_branches')
    op.create_table('seen_transactions',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('txid', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('updated_at', store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_seen_transactions_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seen_transactions')),
    sa.UniqueConstraint('account_id', 'txid', name='uq_seen_transactions_tx')
    )
