"""SQLAlchemy models of the attestation service (one database, alembic migrations).

``hosts`` holds a registration (EK, EK certificate, AK, the Nova host name it is bound to)
and the host's current verdict with what the verifier must remember between rounds (reset
count, IMA offset and PCR 10 value). ``verdict_history`` keeps every appraisal result
that changed the state, plus periodic confirmations; ``policies`` stores the three Keylime
documents as JSON text.

``enrolments`` is the operator's word, the one truth joining a Nova host name, the TPM's
endorsement key (SHA-256 of its SubjectPublicKeyInfo) and the Keystone credentials (user or
application credential IDs, ``host_credentials``) that stand for that host. A registration
becomes ``active`` only for an EK enrolled (or approved) for its name.
"""
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy import orm

Base = orm.declarative_base()
# microseconds on MySQL/MariaDB too (DATETIME defaults to whole seconds there, which
# would bend the schedule and the claim comparisons)
DateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')

# Registration states: waiting for the AK activation proof (``pending``); AK proven but
# the EK is not enrolled for this name (``awaiting_approval``, never attested); ``active``.
PENDING = 'pending'
AWAITING_APPROVAL = 'awaiting_approval'
ACTIVE = 'active'
# How an enrolment came to be.
ENROLLED = 'enrolled'       # the operator named the EK beforehand
APPROVED = 'approved'       # the operator approved a registration's EK


class Host(Base):
    __tablename__ = 'attestation_hosts'

    name = sa.Column(sa.String(255), primary_key=True)
    # wide enough for every state above (16 refused 'awaiting_approval' on MariaDB: 0003)
    registration = sa.Column(sa.String(32), nullable=False, default=PENDING)
    ek_public = sa.Column(sa.LargeBinary, nullable=False)
    # one TPM is one host: unique (NULL only for rows the upgrade found sharing an EK)
    ek_sha256 = sa.Column(sa.String(64), nullable=True, unique=True, index=True)
    ek_certificate = sa.Column(sa.LargeBinary, nullable=True)
    ak_public = sa.Column(sa.LargeBinary, nullable=False)
    ak_name = sa.Column(sa.String(140), nullable=False)
    # A new AK of a host whose AK is already proven waits here until it is activated in
    # turn: the proven AK and the verdict stay in use meanwhile.
    pending_ak_public = sa.Column(sa.LargeBinary, nullable=True)
    pending_ak_name = sa.Column(sa.String(140), nullable=True)
    # SHA-256 of the MakeCredential secret while an AK awaits activation (never the secret).
    challenge_digest = sa.Column(sa.String(64), nullable=True)
    policy = sa.Column(sa.String(255), nullable=True)
    registered_at = sa.Column(DateTime, nullable=False)
    activated_at = sa.Column(DateTime, nullable=True)
    # current verdict
    status = sa.Column(sa.String(16), nullable=False, default='unknown')
    reasons = sa.Column(sa.Text, nullable=False, default='[]')
    verified_at = sa.Column(DateTime, nullable=True)
    last_answer_at = sa.Column(DateTime, nullable=True)
    reset_count = sa.Column(sa.BigInteger, nullable=True)
    ima_offset = sa.Column(sa.BigInteger, nullable=False, default=0)
    ima_pcr = sa.Column(sa.String(128), nullable=True)
    # the rest of the TPM's clockInfo and its firmwareVersion in the last quote whose clock
    # checks passed (0004); clock and firmware version are UINT64, kept as decimal text
    # (BIGINT is signed, and TPM2_ClockSet takes the clock past 2^63)
    restart_count = sa.Column(sa.BigInteger, nullable=True)
    tpm_clock = sa.Column(sa.String(20), nullable=True)
    clock_safe = sa.Column(sa.Boolean, nullable=True)
    firmware_version = sa.Column(sa.String(20), nullable=True)
    # scheduling: the worker that wins the conditional update on next_attest_at attests
    next_attest_at = sa.Column(DateTime, nullable=False, index=True)
    attested_by = sa.Column(sa.String(255), nullable=True)


class VerdictHistory(Base):
    __tablename__ = 'attestation_history'

    id = sa.Column(sa.BigInteger().with_variant(sa.Integer, 'sqlite'), primary_key=True,
                   autoincrement=True)
    host = sa.Column(sa.String(255), sa.ForeignKey('attestation_hosts.name',
                                                   ondelete='CASCADE'),
                     nullable=False, index=True)
    status = sa.Column(sa.String(16), nullable=False)
    reasons = sa.Column(sa.Text, nullable=False)
    verified_at = sa.Column(DateTime, nullable=False)
    reset_count = sa.Column(sa.BigInteger, nullable=True)
    worker = sa.Column(sa.String(255), nullable=True)


class Policy(Base):
    __tablename__ = 'attestation_policies'

    name = sa.Column(sa.String(255), primary_key=True)
    tpm_policy = sa.Column(sa.Text, nullable=True)
    runtime_policy = sa.Column(sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'),
                               nullable=True)
    mb_refstate = sa.Column(sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'),
                            nullable=True)
    created_at = sa.Column(DateTime, nullable=False)
    # the measured-boot engine that reads mb_refstate (None: 'example' when there is a
    # reference state, else no measured-boot policy) and the clock policy (0004)
    mb_engine = sa.Column(sa.String(32), nullable=True)
    allow_unorderly_shutdown = sa.Column(sa.Boolean, nullable=False, default=False,
                                         server_default=sa.false())


class Enrolment(Base):
    __tablename__ = 'attestation_enrolments'

    host = sa.Column(sa.String(255), primary_key=True)
    ek_sha256 = sa.Column(sa.String(64), nullable=False, unique=True, index=True)
    origin = sa.Column(sa.String(16), nullable=False)
    created_at = sa.Column(DateTime, nullable=False)
    created_by = sa.Column(sa.String(255), nullable=True)


class HostCredential(Base):
    __tablename__ = 'attestation_host_credentials'

    # a credential stands for at most one host
    credential_id = sa.Column(sa.String(255), primary_key=True)
    host = sa.Column(sa.String(255), sa.ForeignKey('attestation_enrolments.host',
                                                   ondelete='CASCADE'),
                     nullable=False, index=True)
    created_at = sa.Column(DateTime, nullable=False)
