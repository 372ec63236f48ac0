"""Secure log: records and checkpoints.

Revision ID: securelog_0001
Revises:
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = 'securelog_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), 'mysql')
    op.create_table(
        'securelog_records',
        sa.Column('log_index', sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column('source', sa.String(255), nullable=False),
        sa.Column('seq', sa.BigInteger, nullable=False),
        sa.Column('tenant', sa.String(255), nullable=False),
        sa.Column('event_type', sa.String(255), nullable=False),
        sa.Column('time_ns', sa.BigInteger, nullable=False),
        sa.Column('leaf_hash', sa.LargeBinary(32), nullable=False),
        sa.Column('data', blob, nullable=False),
        sa.UniqueConstraint('source', 'seq', name='uniq_securelog_records0source0seq'),
    )
    op.create_index('securelog_records_tenant_idx', 'securelog_records', ['tenant'])
    op.create_table(
        'securelog_checkpoints',
        sa.Column('tree_size', sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column('created_ns', sa.BigInteger, nullable=False),
        sa.Column('note', sa.Text, nullable=False),
    )
