"""Secure log: evidence of refused entries (conflicting duplicates, bad seals, unknown sources).

Revision ID: securelog_0002
Revises: securelog_0001
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = 'securelog_0002'
down_revision = 'securelog_0001'
branch_labels = None
depends_on = None


def upgrade():
    blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), 'mysql')
    op.create_table(
        'securelog_evidence',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer, 'sqlite'), primary_key=True,
                  autoincrement=True),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('source', sa.String(255), nullable=False),
        sa.Column('seq', sa.BigInteger, nullable=False),
        sa.Column('received_ns', sa.BigInteger, nullable=False),
        sa.Column('reason', sa.Text, nullable=False),
        sa.Column('stored_index', sa.BigInteger, nullable=True),
        sa.Column('released_index', sa.BigInteger, nullable=True),
        sa.Column('entry', blob, nullable=False),
    )
    op.create_index('securelog_evidence_source_seq_idx', 'securelog_evidence',
                    ['source', 'seq'])
    op.create_index('securelog_evidence_kind_idx', 'securelog_evidence', ['kind'])
