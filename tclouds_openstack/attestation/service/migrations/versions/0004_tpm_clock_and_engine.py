"""The whole TPM clock of a host, and a policy's measured-boot engine and clock policy.

Appraisal compares each quote's ``clockInfo`` (clock, resetCount, restartCount, safe) and
``firmwareVersion`` with the last good quote's (issue 12, point 3), but the verifier kept
only ``resetCount``: within one boot a restored TPM state (clock or restartCount gone back)
or another firmware passed. Hosts keep the rest here. A policy names the measured-boot
engine that reads its reference state (Keylime's ``measured_boot_policy_name``: example,
accept-all, reject-all; issue 12 point 4) and whether a TPM that was not shut down orderly
is accepted. Existing policies keep their meaning (no engine: ``example`` with a reference
state; unorderly shutdowns refused).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('attestation_hosts') as batch:
        batch.add_column(sa.Column('restart_count', sa.BigInteger, nullable=True))
        batch.add_column(sa.Column('tpm_clock', sa.String(20), nullable=True))
        batch.add_column(sa.Column('clock_safe', sa.Boolean, nullable=True))
        batch.add_column(sa.Column('firmware_version', sa.String(20), nullable=True))
    with op.batch_alter_table('attestation_policies') as batch:
        batch.add_column(sa.Column('mb_engine', sa.String(32), nullable=True))
        batch.add_column(sa.Column('allow_unorderly_shutdown', sa.Boolean, nullable=False,
                                   server_default=sa.false()))
