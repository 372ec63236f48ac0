"""SQLAlchemy models of the secure log store (adapter; schema owned by migrations/).

``securelog_records``: one row per sealed record, ``log_index`` is the Merkle leaf index;
``(source, seq)`` is unique, which makes ingestion idempotent: a redelivered notification
is recognised and not appended twice. ``securelog_checkpoints``: every signed tree head.
``securelog_batches``: storage layout 2, the records of one appended batch in one row
(``first_index``: the log index of its first record; ``data``: :func:`.store.pack_batch`);
their rows in ``securelog_records`` then hold the index columns with ``data`` NULL.
``securelog_evidence``: entries ingestion refused to append, kept as evidence, never
dropped: a conflicting duplicate of a stored ``(source, seq)`` (``conflict``, with the
index of the stored one), an entry whose source seal does not verify (``bad-seal``) or can
no longer be verified (``unverifiable``), and entries of sources nobody enrolled
(``unknown-source``: held, and appended once the source is enrolled, ``released_index``).
"""
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy import orm

Base = orm.declarative_base()

# MySQL's BLOB stops at 64 KiB; notifications can be larger.
Blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), 'mysql')


class Record(Base):
    __tablename__ = 'securelog_records'
    log_index = sa.Column(sa.BigInteger, primary_key=True, autoincrement=False)
    source = sa.Column(sa.String(255), nullable=False)
    seq = sa.Column(sa.BigInteger, nullable=False)
    tenant = sa.Column(sa.String(255), nullable=False, default='')
    event_type = sa.Column(sa.String(255), nullable=False, default='')
    time_ns = sa.Column(sa.BigInteger, nullable=False)
    leaf_hash = sa.Column(sa.LargeBinary(32), nullable=False)
    data = sa.Column(Blob, nullable=True)      # NULL: in its batch (storage layout 2)
    __table_args__ = (
        sa.UniqueConstraint('source', 'seq', name='uniq_securelog_records0source0seq'),
        sa.Index('securelog_records_tenant_idx', 'tenant'),
    )


class Batch(Base):
    __tablename__ = 'securelog_batches'
    first_index = sa.Column(sa.BigInteger, primary_key=True, autoincrement=False)
    data = sa.Column(Blob, nullable=False)


class Checkpoint(Base):
    __tablename__ = 'securelog_checkpoints'
    tree_size = sa.Column(sa.BigInteger, primary_key=True, autoincrement=False)
    created_ns = sa.Column(sa.BigInteger, nullable=False)
    note = sa.Column(sa.Text, nullable=False)


class Evidence(Base):
    __tablename__ = 'securelog_evidence'
    id = sa.Column(sa.BigInteger().with_variant(sa.Integer, 'sqlite'), primary_key=True,
                   autoincrement=True)
    kind = sa.Column(sa.String(32), nullable=False)
    source = sa.Column(sa.String(255), nullable=False)
    seq = sa.Column(sa.BigInteger, nullable=False)
    received_ns = sa.Column(sa.BigInteger, nullable=False)
    reason = sa.Column(sa.Text, nullable=False)
    stored_index = sa.Column(sa.BigInteger, nullable=True)
    released_index = sa.Column(sa.BigInteger, nullable=True)
    entry = sa.Column(Blob, nullable=False)
    __table_args__ = (
        sa.Index('securelog_evidence_source_seq_idx', 'source', 'seq'),
        sa.Index('securelog_evidence_kind_idx', 'kind'),
    )
