"""Initial trust requirements schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'trust_requirements',
        sa.Column('project_id', sa.String(64), primary_key=True),
        sa.Column('trusted_host', sa.Boolean, nullable=True),
        sa.Column('jurisdictions', sa.Text, nullable=True),
        sa.Column('updated_at', sa.DateTime, nullable=False),
        sa.Column('updated_by', sa.String(64), nullable=True),
    )
