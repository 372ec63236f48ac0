"""Registration bound by the operator: enrolments, host credentials, one EK per host.

Adds ``attestation_enrolments`` (host name <-> EK SHA-256, set by an admin) and
``attestation_host_credentials`` (Keystone user / application credential IDs standing for
an enrolled host), the EK hash of every registration (unique: one TPM is one host) and the
slot where a new AK waits for its activation without displacing the proven one.

Existing registrations were admitted first-come; none is enrolled, so every active one is
moved to ``awaiting_approval`` (never attested, never trusted) until an admin approves or
enrols it. Registrations sharing one EK keep no EK hash and cannot be approved until all
but one are deleted.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
import collections
import hashlib
import logging

from alembic import op
from cryptography.hazmat.primitives import serialization
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

LOG = logging.getLogger('alembic.runtime.migration')
_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')


def _ek_sha256(ek_public):
    from tclouds_openstack.tpm import errors
    from tclouds_openstack.tpm import structures
    try:
        key = structures.parse_tpm2b_public(ek_public).public_key()
    except errors.TPMError:
        return None
    return hashlib.sha256(key.public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def upgrade():
    with op.batch_alter_table('attestation_hosts') as batch:
        batch.add_column(sa.Column('ek_sha256', sa.String(64), nullable=True))
        batch.add_column(sa.Column('pending_ak_public', sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column('pending_ak_name', sa.String(140), nullable=True))
        # 'awaiting_approval' (17) does not fit the 0001 column: MariaDB refuses it (0003
        # widens databases that passed this revision without rows to move)
        batch.alter_column('registration', existing_type=sa.String(16),
                           type_=sa.String(32), existing_nullable=False)
    op.create_table(
        'attestation_enrolments',
        sa.Column('host', sa.String(255), primary_key=True),
        sa.Column('ek_sha256', sa.String(64), nullable=False),
        sa.Column('origin', sa.String(16), nullable=False),
        sa.Column('created_at', _DATETIME, nullable=False),
        sa.Column('created_by', sa.String(255), nullable=True),
        mysql_engine='InnoDB', mysql_charset='utf8mb4')
    op.create_index('ix_attestation_enrolments_ek_sha256', 'attestation_enrolments',
                    ['ek_sha256'], unique=True)
    op.create_table(
        'attestation_host_credentials',
        sa.Column('credential_id', sa.String(255), primary_key=True),
        sa.Column('host', sa.String(255),
                  sa.ForeignKey('attestation_enrolments.host', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('created_at', _DATETIME, nullable=False),
        mysql_engine='InnoDB', mysql_charset='utf8mb4')
    op.create_index('ix_attestation_host_credentials_host', 'attestation_host_credentials',
                    ['host'])

    hosts = sa.table('attestation_hosts', sa.column('name', sa.String),
                     sa.column('ek_public', sa.LargeBinary),
                     sa.column('ek_sha256', sa.String),
                     sa.column('registration', sa.String))
    conn = op.get_bind()
    by_ek = collections.defaultdict(list)
    for name, ek_public in conn.execute(sa.select(hosts.c.name, hosts.c.ek_public)):
        digest = _ek_sha256(ek_public)
        if digest is not None:
            by_ek[digest].append(name)
    for digest, names in by_ek.items():
        if len(names) > 1:
            LOG.warning('one EK (sha256 %s) is registered under %d names (%s): none of them '
                        'can be approved until all but one are deleted',
                        digest, len(names), ', '.join(sorted(names)))
            continue
        conn.execute(hosts.update().where(hosts.c.name == names[0])
                     .values(ek_sha256=digest))
    moved = conn.execute(hosts.update().where(hosts.c.registration == 'active')
                         .values(registration='awaiting_approval')).rowcount
    if moved:
        LOG.warning('%d active registrations now await an admin\'s approval ("openstack '
                    'attestation host approve HOST" or "... host enroll")', moved)
    op.create_index('ix_attestation_hosts_ek_sha256', 'attestation_hosts', ['ek_sha256'],
                    unique=True)
