"""Registration state column wide enough for ``awaiting_approval``.

0001 made ``attestation_hosts.registration`` 16 characters; 0002 added the state
``awaiting_approval`` (17). sqlite does not enforce the length, MariaDB/MySQL in strict
mode refuse the row: every registration of a host not enrolled beforehand failed there.
0002 now widens the column before it moves rows; this revision widens databases that were
upgraded past 0002 before that fix. Existing values are kept.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('attestation_hosts') as batch:
        batch.alter_column('registration', existing_type=sa.String(16),
                           type_=sa.String(32), existing_nullable=False)
