"""Secure log: storage layout 2, one row per appended batch (securelog_batches).

A batch's records are stored together in one row (see ``store.BATCH_MAGIC``); their rows
in securelog_records keep the index columns (source, seq, tenant, event type, leaf hash)
with ``data`` NULL. Rows written before keep their bytes: layout 1 still reads.

Revision ID: securelog_0003
Revises: securelog_0002
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = 'securelog_0003'
down_revision = 'securelog_0002'
branch_labels = None
depends_on = None


def upgrade():
    blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), 'mysql')
    op.create_table(
        'securelog_batches',
        sa.Column('first_index', sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column('data', blob, nullable=False),
    )
    with op.batch_alter_table('securelog_records') as batch:
        batch.alter_column('data', existing_type=blob, nullable=True)
