"""Initial attestation schema: hosts, history, policies.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')
_LONG = sa.Text().with_variant(mysql.LONGTEXT(), 'mysql')


def upgrade():
    op.create_table(
        'attestation_hosts',
        sa.Column('name', sa.String(255), primary_key=True),
        sa.Column('registration', sa.String(16), nullable=False),
        sa.Column('ek_public', sa.LargeBinary, nullable=False),
        sa.Column('ek_certificate', sa.LargeBinary, nullable=True),
        sa.Column('ak_public', sa.LargeBinary, nullable=False),
        sa.Column('ak_name', sa.String(140), nullable=False),
        sa.Column('challenge_digest', sa.String(64), nullable=True),
        sa.Column('policy', sa.String(255), nullable=True),
        sa.Column('registered_at', _DATETIME, nullable=False),
        sa.Column('activated_at', _DATETIME, nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('reasons', sa.Text, nullable=False),
        sa.Column('verified_at', _DATETIME, nullable=True),
        sa.Column('last_answer_at', _DATETIME, nullable=True),
        sa.Column('reset_count', sa.BigInteger, nullable=True),
        sa.Column('ima_offset', sa.BigInteger, nullable=False),
        sa.Column('ima_pcr', sa.String(128), nullable=True),
        sa.Column('next_attest_at', _DATETIME, nullable=False),
        sa.Column('attested_by', sa.String(255), nullable=True),
        mysql_engine='InnoDB', mysql_charset='utf8mb4')
    op.create_index('ix_attestation_hosts_next_attest_at', 'attestation_hosts',
                    ['next_attest_at'])
    op.create_table(
        'attestation_history',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer, 'sqlite'), primary_key=True,
                  autoincrement=True),
        sa.Column('host', sa.String(255),
                  sa.ForeignKey('attestation_hosts.name', ondelete='CASCADE'), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('reasons', sa.Text, nullable=False),
        sa.Column('verified_at', _DATETIME, nullable=False),
        sa.Column('reset_count', sa.BigInteger, nullable=True),
        sa.Column('worker', sa.String(255), nullable=True),
        mysql_engine='InnoDB', mysql_charset='utf8mb4')
    op.create_index('ix_attestation_history_host', 'attestation_history', ['host'])
    op.create_table(
        'attestation_policies',
        sa.Column('name', sa.String(255), primary_key=True),
        sa.Column('tpm_policy', sa.Text, nullable=True),
        sa.Column('runtime_policy', _LONG, nullable=True),
        sa.Column('mb_refstate', _LONG, nullable=True),
        sa.Column('created_at', _DATETIME, nullable=False),
        mysql_engine='InnoDB', mysql_charset='utf8mb4')
