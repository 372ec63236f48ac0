"""Database access of the attestation service: every query and write in one place.

All writes are single short transactions, so a worker killed mid-round (kill -9) loses at
most the appraisal it was doing, never a registration or a stored verdict. Hosts are
scheduled through ``next_attest_at``. The worker loop claims a batch of due hosts in one
transaction (:meth:`Store.claim_due`: ``SELECT ... FOR UPDATE SKIP LOCKED`` of the columns
a round needs, then one ``UPDATE`` moving their ``next_attest_at`` and naming the worker),
so two workers never claim the same host, never wait on each other's rows, and a round
reads nothing else. The pair (``attested_by``, ``next_attest_at``) the claim wrote is the
round's token: :meth:`Store.save_claimed_verdicts` writes the verdicts of a batch of
rounds in one transaction, each only while its token, AK and previous verdict are still
those the round started from (a round that lost its claim - the host was made due again,
deleted, given a new AK, claimed by another worker after a stall - writes nothing). A
history row is added only when the status or the reasons changed. :meth:`Store.claim`
(a single conditional UPDATE, ``WHERE next_attest_at = <the value it read>``) and
:meth:`Store.save_verdict` remain for single rounds outside the loop.
"""
import datetime
import functools
import hashlib
import json
import os
import random
import time
import types

from oslo_db import exception as db_exc
import sqlalchemy as sa

from tclouds_openstack.attestation.service import hostnames
from tclouds_openstack.attestation.service import models
from tclouds_openstack.common import db
from tclouds_openstack.common import exception

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'migrations')
VERSION_TABLE = 'attestation_alembic_version'
MIGRATION_LOCK = 'tclouds_attestation_migrate'


def migration_lock_name(database):
    """The migration lock of one database: ``MIGRATION_LOCK.<database>``.

    MariaDB/MySQL ``GET_LOCK`` names are server-wide, so a fixed name would make db syncs
    of unrelated databases on one server (two deployments, parallel test runs) wait for
    each other or time out. Names are limited to 64 characters: a longer one is hashed.
    """
    name = '%s.%s' % (MIGRATION_LOCK, database or '')
    if len(name) > 64:
        name = '%s.%s' % (MIGRATION_LOCK, hashlib.sha256(name.encode()).hexdigest()[:32])
    return name


class StoredStateError(ValueError):
    pass


def _uint64(text):
    if text is None:
        return None
    if not isinstance(text, str) or not text.isdigit() or not text.isascii() \
            or int(text) >= 1 << 64:
        raise ValueError('%r is not a UINT64 in decimal' % (text,))
    return int(text)


def _verdict_columns(reasons, verified_at, state, answered):
    """(reasons as JSON, the columns a verdict sets): one shape for single and batch writes."""
    values = {'verified_at': verified_at}
    if answered:
        values['last_answer_at'] = verified_at
    if state is not None:
        values.update(_state_columns(state))
    return json.dumps(list(reasons)), values


def _state_columns(state):
    """Host columns of an appraisal HostState: the TPM clock and the IMA continuation."""
    return {'reset_count': state.reset_count, 'ima_offset': state.ima_offset,
            'ima_pcr': state.ima_pcr.hex() if state.ima_pcr is not None else None,
            'restart_count': state.restart_count,
            'tpm_clock': str(state.clock) if state.clock is not None else None,
            'clock_safe': state.safe,
            'firmware_version': (str(state.firmware_version)
                                 if state.firmware_version is not None else None)}


def utcnow():
    """Naive UTC (what the DateTime columns store on every backend)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def aware(value):
    return value.replace(tzinfo=datetime.timezone.utc) if value is not None else None


class _Context(object):
    """enginefacade needs an object to hang its transaction state on."""


class DatabaseUnavailable(exception.ServiceUnavailable):
    pass


class _ClaimLost(Exception):
    """A batch claim updated fewer rows than it locked (rolled back, nothing claimed)."""


# what one attestation round reads of a host (claim_due returns it with the claim)
ROUND_COLUMNS = ('name', 'policy', 'ak_public', 'ak_name', 'registered_at', 'activated_at',
                 'status', 'reasons', 'last_answer_at', 'reset_count', 'ima_offset',
                 'ima_pcr', 'restart_count', 'tpm_clock', 'clock_safe', 'firmware_version',
                 'next_attest_at', 'attested_by')


class SchemaError(Exception):
    """The database schema is not the one this code needs (the message says what to run)."""


_LOCKED_RETRIES = 100


def _guard(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for attempt in range(_LOCKED_RETRIES):
            try:
                return fn(*args, **kwargs)
            except (db_exc.DBConnectionError, sa.exc.OperationalError,
                    sa.exc.InterfaceError) as e:
                # sqlite shared by processes: a stale read snapshot cannot write; redo
                if 'database is locked' in str(e) and attempt + 1 < _LOCKED_RETRIES:
                    time.sleep(0.02 + random.random() * 0.05)
                    continue
                raise DatabaseUnavailable('attestation database unavailable: %s'
                                          % str(e).splitlines()[0][:200])
    return wrapper


# rows per statement of _update_each: some 25 parameters a row, well under every
# backend's limit of parameters per statement (sqlite 32,766, MySQL/PostgreSQL 65,535)
_UPDATE_EACH_ROWS = 64


def _update_each(conn, keys, params, worker):
    """Write each host's own values of ``keys`` in one UPDATE, each under its own condition.

    ``params``: what :meth:`Store.save_claimed_verdicts` binds for one row (``b_name``,
    ``b_token``, ``b_ak``, ``b_status``, ``b_reasons`` and the values of ``keys``). A row
    is written only while it carries the claim (``attested_by`` = ``worker``, the claimed
    ``next_attest_at``), the AK and the verdict of its round, as row by row. Returns the
    count of rows matched: all of them, or the caller writes them one at a time. One
    statement and one round trip instead of one per host (a driver's executemany of an
    UPDATE sends one each); its text is built once per shape and sent as the driver's SQL
    with the columns' own bind conversions (SQLAlchemy would rebuild and re-key a
    statement of some 25 parameters a row every time).
    """
    dialect = conn.dialect
    shape = (dialect.name, dialect.paramstyle, tuple(keys), len(params))
    cached = _DRIVER_SQL.get(shape)
    if cached is None:
        cached = _DRIVER_SQL[shape] = _update_each_sql(dialect, keys, len(params))
    sql, converters = cached
    values = {'w': worker}
    for i, p in enumerate(params):
        for field, column in _UPDATE_EACH_WHERE:
            values['%s%d' % (field, i)] = converters[column](p[field])
        for key in keys:
            values['v%d_%s' % (i, key)] = converters[key](p[key])
    return conn.exec_driver_sql(sql, values).rowcount


def _claim_rows(conn, tokens, worker, now):
    """Claim the due active hosts {name: token} for ``worker``; the count of rows matched.

    One UPDATE sets each host's ``next_attest_at`` to its token and ``attested_by`` to
    ``worker``: the statement of ``claim_due`` (``... WHERE name IN (...) AND registration = active
    AND next_attest_at <= now``), its text built once per number of hosts and sent as the
    driver's SQL with the columns' bind conversions (see :func:`_update_each`).
    """
    dialect = conn.dialect
    shape = ('claim', dialect.name, dialect.paramstyle, len(tokens))
    cached = _DRIVER_SQL.get(shape)
    if cached is None:
        cached = _DRIVER_SQL[shape] = _claim_rows_sql(dialect, len(tokens))
    sql, converters = cached
    token = converters['next_attest_at']
    values = {'w': worker, 'active': models.ACTIVE, 'now': token(now)}
    for i, (name, when) in enumerate(tokens.items()):
        values['n%d' % i] = name
        values['t%d' % i] = token(when)
    return conn.exec_driver_sql(sql, values).rowcount


def _claim_rows_sql(dialect, count):
    hosts = models.Host.__table__
    quote = dialect.identifier_preparer.quote
    bind = _binder(dialect)
    names = ', '.join(bind('n%d' % i) for i in range(count))
    whens = ' '.join('WHEN %s THEN %s' % (bind('n%d' % i), bind('t%d' % i))
                     for i in range(count))
    sql = ('UPDATE %s SET %s = CASE %s %s END, %s = %s WHERE %s IN (%s) AND %s = %s AND '
           '%s <= %s' % (quote(hosts.name), quote('next_attest_at'), quote('name'), whens,
                         quote('attested_by'), bind('w'), quote('name'), names,
                         quote('registration'), bind('active'), quote('next_attest_at'),
                         bind('now')))
    return sql, _converters(dialect, ['next_attest_at'])


def _binder(dialect):
    """A parameter's placeholder in driver SQL (a dict of parameters, by name)."""
    if dialect.paramstyle == 'pyformat':
        return lambda name: '%%(%s)s' % name
    if dialect.paramstyle in ('named', 'qmark'):     # sqlite3 takes :name with a dict
        return lambda name: ':%s' % name
    raise NotImplementedError('paramstyle %s' % dialect.paramstyle)


def _converters(dialect, columns):
    """{column: its type's bind conversion for ``dialect``} (what SQLAlchemy applies)."""
    hosts = models.Host.__table__
    converters = {}
    for column in columns:
        process = hosts.c[column].type._cached_bind_processor(dialect)
        converters[column] = process or (lambda value: value)
    return converters


# statements sent as the driver's SQL, by shape: (text, {column: bind conversion})
_DRIVER_SQL = {}
# the condition of a row: (parameter of save_claimed_verdicts, column); a None compared
# with = matches nothing, as in the statement row by row
_UPDATE_EACH_WHERE = (('b_name', 'name'), ('b_token', 'next_attest_at'), ('b_ak', 'ak_name'),
                      ('b_status', 'status'), ('b_reasons', 'reasons'))


def _update_each_sql(dialect, keys, count):
    hosts = models.Host.__table__
    quote = dialect.identifier_preparer.quote
    bind = _binder(dialect)
    rows = []
    for i in range(count):
        rows.append('(%s)' % ' AND '.join('%s = %s' % (quote(column), bind('%s%d' % (field, i)))
                                          for field, column in _UPDATE_EACH_WHERE))
    sets = []
    for key in keys:
        whens = ' '.join('WHEN %s THEN %s' % (bind('b_name%d' % i), bind('v%d_%s' % (i, key)))
                         for i in range(count))
        sets.append('%s = CASE %s %s END' % (quote(key), quote('name'), whens))
    sql = 'UPDATE %s SET %s WHERE %s = %s AND (%s)' % (
        quote(hosts.name), ', '.join(sets), quote('attested_by'), bind('w'),
        ' OR '.join(rows))
    return sql, _converters(dialect, set(keys) | {c for _, c in _UPDATE_EACH_WHERE})


def _policy_versions(conn, names):
    """{name: (created_at, sizes of the documents, mb_engine, allow_unorderly_shutdown)}.

    What tells one stored policy from another without reading its documents (a policy is
    replaced by deleting and creating it). One query for several names.
    """
    return {row[0]: tuple(row[1:])
            for row in conn.execute(_POLICY_VERSIONS, {'names': sorted(names)})}


def _policy_versions_query():
    policies = models.Policy.__table__
    return (sa.select(policies.c.name, policies.c.created_at,
                      sa.func.length(policies.c.runtime_policy),
                      sa.func.length(policies.c.mb_refstate),
                      sa.func.length(policies.c.tpm_policy),
                      policies.c.mb_engine, policies.c.allow_unorderly_shutdown)
            .where(policies.c.name.in_(sa.bindparam('names', expanding=True))))


# built once: executing it costs its cache key and the parameters only
_POLICY_VERSIONS = _policy_versions_query()


class Store(object):
    def __init__(self, connection, max_retries=3):
        self.connection = connection
        self.facade = db.make_facade(connection)
        # fail fast when the database is down: callers answer "unavailable" (503 /
        # unknown) rather than hang for oslo.db's default of 10 x 10 s
        self.facade.configure(max_retries=max_retries, retry_interval=1)
        if connection.startswith('sqlite'):
            self._tune_sqlite()

    def _tune_sqlite(self):
        """WAL and a busy timeout: the API, a worker and tools may share the sqlite file.

        A transaction that read before another process wrote still fails at once with
        "database is locked" when it then writes; :func:`_guard` retries those.
        """
        def on_connect(dbapi_connection, record):
            cursor = dbapi_connection.cursor()
            cursor.execute('PRAGMA busy_timeout = 30000')
            cursor.execute('PRAGMA journal_mode = WAL')
            cursor.close()
        try:
            engine = self.facade.writer.get_engine()
        except (db_exc.DBConnectionError, sa.exc.OperationalError):
            return
        sa.event.listen(engine, 'connect', on_connect)
        engine.dispose()    # connections opened before the listener get replaced

    def migrate(self):
        """Upgrade the schema to this code's head (``tclouds-attestation-manage db sync``).

        Serialised by a database lock on MariaDB/MySQL (``GET_LOCK``) and PostgreSQL
        (advisory lock), so two ``db sync`` runs started together (two controllers
        deploying at once) do not both try to create the tables: the second waits and
        then finds nothing to do.
        """
        engine = sa.create_engine(self.connection, poolclass=sa.pool.NullPool)
        try:
            self._migrate_locked(engine)
        except (db_exc.DBError, sa.exc.SQLAlchemyError) as e:
            raise DatabaseUnavailable('attestation database unavailable: %s'
                                      % str(e).splitlines()[0][:200])
        finally:
            engine.dispose()

    def _migrate_locked(self, engine):
        """Run the upgrade while holding the migration lock (MySQL/PostgreSQL)."""
        # PostgreSQL advisory locks belong to the database already; MySQL's are server-wide
        lock = migration_lock_name(engine.url.database)
        with engine.connect() as conn:
            dialect = engine.dialect.name
            if dialect == 'mysql':
                got = conn.execute(sa.text('SELECT GET_LOCK(:n, :t)'),
                                   {'n': lock, 't': 300}).scalar()
                if got != 1:
                    raise SchemaError('timed out after 300 s waiting for the migration '
                                      'lock %s held by another db sync' % lock)
            elif dialect == 'postgresql':
                conn.execute(sa.text('SELECT pg_advisory_lock(hashtext(:n))'),
                             {'n': lock})
            try:
                db.migrate(self.connection, MIGRATIONS, version_table=VERSION_TABLE)
            finally:
                if dialect == 'mysql':
                    conn.execute(sa.text('SELECT RELEASE_LOCK(:n)'), {'n': lock})
                elif dialect == 'postgresql':
                    conn.execute(sa.text('SELECT pg_advisory_unlock(hashtext(:n))'),
                                 {'n': lock})

    def schema_revisions(self):
        """(current, head) revisions of the attestation schema."""
        try:
            return db.revisions(self.connection, MIGRATIONS, version_table=VERSION_TABLE)
        except (db_exc.DBError, sa.exc.SQLAlchemyError) as e:
            raise DatabaseUnavailable('attestation database unavailable: %s'
                                      % str(e).splitlines()[0][:200])

    def check_schema(self):
        """Raise :class:`SchemaError` unless the schema is exactly this code's head.

        The services call this at start instead of migrating themselves: an API and a
        worker started together on a fresh database would otherwise race to create it.
        """
        current, head = self.schema_revisions()
        if current == head:
            return head
        if current is None:
            problem = 'has no attestation schema'
        else:
            problem = 'is at schema revision %s, this code needs %s' % (current, head)
        raise SchemaError('the attestation database %s: run "tclouds-attestation-manage '
                          '--config-file <tclouds.conf> db sync" before starting the services'
                          % problem)

    def _writer(self):
        return self.facade.writer.using(_Context())

    def _reader(self):
        return self.facade.reader.using(_Context())

    # ------------------------------------------------------------------ registration
    @_guard
    def register(self, name, ek_public, ek_sha256, ek_certificate, ak_public, ak_name,
                 challenge_digest, policy=None, allow_unenrolled=True):
        """Record a registration of ``name`` whose AK now awaits activation.

        Refused with Conflict (the message is the reason) when the name is enrolled with
        another EK, the EK is enrolled or registered for another name, the name is bound to
        another EK, or the name is not enrolled and ``allow_unenrolled`` is false. A host
        whose AK is already proven (active or awaiting approval) keeps that AK and its
        verdict: the new AK waits in ``pending_ak_*`` until :meth:`activate`.
        """
        hostnames.check(name)
        now = utcnow()
        with self._writer() as session:
            hostnames.refuse_other_spelling(session, name)
            enrolment = session.get(models.Enrolment, name)
            if enrolment is not None and enrolment.ek_sha256 != ek_sha256:
                raise exception.Conflict(
                    'host %s is enrolled with the EK sha256:%s, not with this TPM\'s EK '
                    'sha256:%s' % (name, enrolment.ek_sha256, ek_sha256))
            other = (session.query(models.Enrolment.host)
                     .filter(models.Enrolment.ek_sha256 == ek_sha256,
                             models.Enrolment.host != name).first())
            if other is not None:
                raise exception.Conflict('this TPM\'s EK (sha256:%s) is enrolled for host %s, '
                                         'not %s' % (ek_sha256, other[0], name))
            other = (session.query(models.Host.name)
                     .filter(models.Host.ek_sha256 == ek_sha256, models.Host.name != name)
                     .first())
            if other is not None:
                raise exception.Conflict(
                    'this TPM\'s EK (sha256:%s) is registered as host %s: one TPM is one '
                    'host (an admin deletes %s to move the TPM)' % (ek_sha256, other[0],
                                                                    other[0]))
            host = session.get(models.Host, name)
            if host is not None and host.ek_public != ek_public:
                raise exception.Conflict('host %s is registered with another endorsement key '
                                         '(sha256:%s); an admin deletes the host to re-enrol '
                                         'it' % (name, host.ek_sha256))
            if enrolment is None and not allow_unenrolled:
                raise exception.Conflict(
                    'host %s is not enrolled and [attestation] unenrolled_registration is '
                    '"refuse": an admin runs "openstack attestation host enroll %s '
                    '--ek-sha256 %s" first' % (name, name, ek_sha256))
            if host is None:
                host = models.Host(name=name, ek_public=ek_public, registered_at=now,
                                   status='unknown', reasons=json.dumps(['not attested yet']),
                                   ima_offset=0, next_attest_at=now, policy=policy,
                                   registration=models.PENDING)
                session.add(host)
            host.ek_sha256 = ek_sha256
            host.ek_certificate = ek_certificate
            host.challenge_digest = challenge_digest
            if host.registration == models.PENDING:
                # nothing proven yet: the new AK simply replaces the old one
                host.ak_public = ak_public
                host.ak_name = ak_name
                host.pending_ak_public = None
                host.pending_ak_name = None
                self._forget_quote_chain(host)
            else:
                host.pending_ak_public = ak_public
                host.pending_ak_name = ak_name
            try:
                session.flush()
            except db_exc.DBDuplicateEntry:
                raise exception.Conflict('this TPM\'s EK (sha256:%s) was registered for '
                                         'another host at the same moment' % ek_sha256)

    @staticmethod
    def _forget_quote_chain(host):
        # a new AK means a new quote chain: the IMA list is read again from its start. The
        # TPM's clock state is kept: the new AK is of the same TPM (its EK proved it), whose
        # clock and counters only go forward; forgetting them would let a restored TPM
        # state pass by registering a new AK (a cleared TPM goes back to 0: re-enrol it)
        host.ima_offset = 0
        host.ima_pcr = None

    @_guard
    def activate(self, name, ak_name, challenge_digest):
        """Accept the activation proof of the AK awaiting it; the new registration state.

        A first AK makes the host ``active`` if its EK is enrolled for its name, else
        ``awaiting_approval``. A new AK of a proven host replaces the old one (the state
        and verdict are kept; the host is attested again at once). None when the proof
        does not match the pending challenge.
        """
        now = utcnow()
        with self._writer() as session:
            host = session.get(models.Host, name)
            if (host is None or not host.challenge_digest
                    or host.challenge_digest != challenge_digest):
                return None
            if host.pending_ak_name is not None:
                if host.pending_ak_name != ak_name:
                    return None
                if host.ak_name != ak_name:
                    self._forget_quote_chain(host)
                host.ak_public = host.pending_ak_public
                host.ak_name = host.pending_ak_name
                host.pending_ak_public = None
                host.pending_ak_name = None
            elif host.registration != models.PENDING or host.ak_name != ak_name:
                return None
            else:
                enrolment = session.get(models.Enrolment, name)
                enrolled = enrolment is not None and enrolment.ek_sha256 == host.ek_sha256
                host.registration = models.ACTIVE if enrolled else models.AWAITING_APPROVAL
            host.challenge_digest = None
            host.activated_at = now
            host.next_attest_at = now
            return host.registration

    # ------------------------------------------------------------------ enrolment
    @_guard
    def enrol(self, name, ek_sha256, credentials=None, origin=models.ENROLLED,
              created_by=None):
        """Bind ``name`` to the EK ``ek_sha256`` and (when given) exactly ``credentials``.

        Conflict when the EK is enrolled or registered for another name, the name is
        registered with another EK, or a credential stands for another host. A
        registration of this EK awaiting approval becomes active.
        """
        hostnames.check(name)
        now = utcnow()
        with self._writer() as session:
            hostnames.refuse_other_spelling(session, name)
            other = (session.query(models.Enrolment.host)
                     .filter(models.Enrolment.ek_sha256 == ek_sha256,
                             models.Enrolment.host != name).first())
            if other is not None:
                raise exception.Conflict('the EK sha256:%s is enrolled for host %s; one TPM '
                                         'is one host' % (ek_sha256, other[0]))
            other = (session.query(models.Host.name)
                     .filter(models.Host.ek_sha256 == ek_sha256, models.Host.name != name)
                     .first())
            if other is not None:
                raise exception.Conflict('the EK sha256:%s is registered as host %s; delete '
                                         'that host first' % (ek_sha256, other[0]))
            host = session.get(models.Host, name)
            if host is not None and host.ek_sha256 != ek_sha256:
                raise exception.Conflict(
                    'host %s is registered with the EK sha256:%s; an admin deletes the host '
                    'before enrolling another TPM under its name' % (name, host.ek_sha256))
            if credentials is not None:
                taken = (session.query(models.HostCredential)
                         .filter(models.HostCredential.credential_id.in_(list(credentials)),
                                 models.HostCredential.host != name).first())
                if taken is not None:
                    raise exception.Conflict('credential %s already stands for host %s'
                                             % (taken.credential_id, taken.host))
            enrolment = session.get(models.Enrolment, name)
            if enrolment is None:
                enrolment = models.Enrolment(host=name, ek_sha256=ek_sha256, origin=origin,
                                             created_at=now, created_by=created_by)
                session.add(enrolment)
            else:
                enrolment.ek_sha256 = ek_sha256
                enrolment.origin = origin
                enrolment.created_at = now
                enrolment.created_by = created_by
            session.flush()
            if credentials is not None:
                session.query(models.HostCredential).filter_by(host=name).delete()
                for credential in sorted(set(credentials)):
                    session.add(models.HostCredential(credential_id=credential, host=name,
                                                      created_at=now))
            if host is not None and host.registration == models.AWAITING_APPROVAL:
                host.registration = models.ACTIVE
                host.next_attest_at = now
            try:
                session.flush()
            except db_exc.DBDuplicateEntry:
                raise exception.Conflict('the EK or a credential was enrolled for another '
                                         'host at the same moment; retry')

    @_guard
    def approve(self, name, ek_sha256=None, credentials=None, approved_by=None):
        """Enrol the EK of ``name``'s registration (``ek_sha256``, when given, must be it)."""
        host = self.get_host(name)
        if host.ek_sha256 is None:
            raise exception.Conflict('host %s has no EK hash: its EK is unreadable or shared '
                                     'with other registrations (found at upgrade); delete '
                                     'them, then the genuine host registers again' % name)
        if ek_sha256 is not None and ek_sha256 != host.ek_sha256:
            raise exception.Conflict('host %s registered the EK sha256:%s, not the EK '
                                     'sha256:%s you approve' % (name, host.ek_sha256,
                                                                ek_sha256))
        self.enrol(name, host.ek_sha256, credentials, origin=models.APPROVED,
                   created_by=approved_by)

    @_guard
    def get_enrolment(self, name):
        """(Enrolment, [credential ids]) of ``name``; NotFound if it is not enrolled."""
        with self._reader() as session:
            enrolment = session.get(models.Enrolment, name)
            if enrolment is None:
                raise exception.NotFound('host %s is not enrolled' % name)
            credentials = [r[0] for r in session.query(models.HostCredential.credential_id)
                           .filter_by(host=name).order_by(models.HostCredential.credential_id)]
            session.expunge(enrolment)
            return enrolment, credentials

    @_guard
    def list_enrolments(self):
        """[(Enrolment, [credential ids])] ordered by host name."""
        with self._reader() as session:
            enrolments = session.query(models.Enrolment).order_by(models.Enrolment.host).all()
            credentials = {}
            for credential_id, host in session.query(models.HostCredential.credential_id,
                                                     models.HostCredential.host):
                credentials.setdefault(host, []).append(credential_id)
            for enrolment in enrolments:
                session.expunge(enrolment)
            return [(e, sorted(credentials.get(e.host, []))) for e in enrolments]

    @_guard
    def host_for_credential(self, credential_id):
        """The enrolled host ``credential_id`` stands for, or None."""
        with self._reader() as session:
            row = session.get(models.HostCredential, credential_id)
            return row.host if row is not None else None

    @_guard
    def get_host(self, name):
        with self._reader() as session:
            host = session.get(models.Host, name)
            if host is None:
                raise exception.NotFound('no host %s is registered' % name)
            session.expunge(host)
            return host

    @_guard
    def list_hosts(self, names=None):
        with self._reader() as session:
            query = session.query(models.Host)
            if names is not None:
                query = query.filter(models.Host.name.in_(list(names)))
            hosts = query.order_by(models.Host.name).all()
            for host in hosts:
                session.expunge(host)
            return hosts

    @_guard
    def delete_host(self, name):
        """Forget the registration, history and enrolment (with its credentials) of ``name``."""
        with self._writer() as session:
            session.query(models.VerdictHistory).filter_by(host=name).delete()
            registered = session.query(models.Host).filter_by(name=name).delete()
            session.query(models.HostCredential).filter_by(host=name).delete()
            enrolled = session.query(models.Enrolment).filter_by(host=name).delete()
            if not registered and not enrolled:
                raise exception.NotFound('no host %s is registered or enrolled' % name)

    @_guard
    def set_host_policy(self, name, policy):
        with self._writer() as session:
            host = session.get(models.Host, name)
            if host is None:
                raise exception.NotFound('no host %s is registered' % name)
            host.policy = policy
            host.next_attest_at = utcnow()

    @_guard
    def request_attestation(self, name):
        """Make ``name`` due now (``openstack attestation host attest``)."""
        with self._writer() as session:
            if not session.query(models.Host).filter_by(name=name).update(
                    {'next_attest_at': utcnow()}):
                raise exception.NotFound('no host %s is registered' % name)

    # ------------------------------------------------------------------ scheduling
    @_guard
    def due_hosts(self, now, limit):
        """[(name, next_attest_at)] of active hosts due at ``now``, oldest first."""
        with self._reader() as session:
            rows = (session.query(models.Host.name, models.Host.next_attest_at)
                    .filter(models.Host.registration == models.ACTIVE,
                            models.Host.next_attest_at <= now)
                    .order_by(models.Host.next_attest_at).limit(limit).all())
            return [(r[0], r[1]) for r in rows]

    @_guard
    def claim(self, name, seen_next, new_next, worker):
        """Conditionally move ``name``'s next_attest_at; True when this worker won it."""
        with self._writer() as session:
            count = (session.query(models.Host)
                     .filter(models.Host.name == name,
                             models.Host.next_attest_at == seen_next)
                     .update({'next_attest_at': new_next, 'attested_by': worker},
                             synchronize_session=False))
            return count == 1

    def _engine(self):
        return self.facade.writer.get_engine()

    @_guard
    def claim_due(self, now, limit, worker, next_time, choose=None, scan=None, exclude=(),
                  default_policy=None):
        """Claim up to ``limit`` due active hosts for ``worker``: ([claimed host], next due).

        One transaction: the due rows, oldest first, are locked with ``FOR UPDATE SKIP
        LOCKED`` (rows another worker is claiming at this moment are skipped, not waited
        for; sqlite serialises writers instead) and one UPDATE sets each claimed host's
        ``next_attest_at`` to ``next_time()`` and ``attested_by`` to ``worker``. Each claimed
        host is a namespace of :data:`ROUND_COLUMNS` whose ``next_attest_at`` and
        ``attested_by`` are the claim's (the token :meth:`save_claimed_verdicts` checks).

        ``choose([(name, next_attest_at)]) -> [name]``: only those hosts (a partitioned
        worker's own share), picked among the ``scan`` oldest due. The second value, read
        only when nothing was claimed, is the earliest ``next_attest_at`` of any active
        host (None when there is none, or when something was claimed): nothing is due
        before it, unless something makes a host due (an activation, a policy change, an
        "attest" request).
        ``exclude``: names never claimed (the worker's rounds in flight).
        ``default_policy``: when given, each claimed host also carries ``policy_version``,
        the :meth:`policy_version` of its policy (``policy`` or this default) read in the
        same transaction (None: no such policy), so a round needs no query of its own.
        """
        try:
            return self._claim_due(now, limit, worker, next_time, choose, scan, exclude,
                                   default_policy)
        except (_ClaimLost, db_exc.DBDeadlock):
            # another worker's claim crossed ours (MariaDB/MySQL may pick a deadlock
            # victim on the index of next_attest_at): nothing claimed, next tick again
            return [], None

    def _claim_due(self, now, limit, worker, next_time, choose, scan, exclude,
                   default_policy=None):
        hosts = models.Host.__table__
        due = sa.and_(hosts.c.registration == models.ACTIVE, hosts.c.next_attest_at <= now)
        if exclude:
            due = sa.and_(due, hosts.c.name.notin_(list(exclude)))
        order = hosts.c.next_attest_at
        columns = [hosts.c[name] for name in ROUND_COLUMNS]
        with self._engine().begin() as conn:
            if choose is not None:
                candidates = conn.execute(sa.select(hosts.c.name, hosts.c.next_attest_at)
                                          .where(due).order_by(order)
                                          .limit(scan or limit)).all()
                names = list(choose([tuple(r) for r in candidates]))[:limit]
                query = (sa.select(*columns).where(due, hosts.c.name.in_(names))
                         .order_by(order)) if names else None
                full = len(candidates) >= (scan or limit)
            else:
                query = sa.select(*columns).where(due).order_by(order).limit(limit)
                full = False
            rows = (conn.execute(query.with_for_update(skip_locked=True)).all()
                    if query is not None else [])
            claimed = []
            if rows:
                tokens = {row.name: next_time() for row in rows}
                count = _claim_rows(conn, tokens, worker, now)
                if count != len(rows):
                    # rows locked (or, on sqlite, read in this write transaction) cannot
                    # change under us; if they did, claim nothing rather than share a host
                    raise _ClaimLost()
                for row in rows:
                    values = dict(row._mapping)
                    values.update(next_attest_at=tokens[row.name], attested_by=worker)
                    claimed.append(types.SimpleNamespace(**values))
                if default_policy is not None:
                    versions = _policy_versions(
                        conn, {h.policy or default_policy for h in claimed})
                    for host in claimed:
                        host.policy_version = versions.get(host.policy or default_policy)
            if claimed or full:
                return claimed, None        # more may be due: the next tick claims again
            next_due = conn.execute(sa.select(sa.func.min(hosts.c.next_attest_at))
                                    .where(hosts.c.registration == models.ACTIVE)).scalar()
            return claimed, next_due

    @_guard
    def renew_claims(self, claims, worker):
        """Move the claims [(host, new next_attest_at)] of rounds still running; [renewed].

        A round that outlasts its claim (an agent slower than the interval) keeps its host:
        no worker claims it meanwhile, and its verdict is still written. A claim that no
        longer holds is not renewed (False); the host keeps the token it had.
        """
        hosts = models.Host.__table__
        done = []
        with self._engine().begin() as conn:
            for host, new in claims:
                done.append(conn.execute(
                    hosts.update().where(hosts.c.name == host.name,
                                         hosts.c.attested_by == worker,
                                         hosts.c.next_attest_at == host.next_attest_at)
                    .values(next_attest_at=new)).rowcount == 1)
        for (host, new), ok in zip(claims, done):
            if ok:
                host.next_attest_at = new
        return done

    @_guard
    def save_claimed_verdicts(self, verdicts, worker, history_limit=1000):
        """Store the verdicts of claimed rounds in one transaction; [previous status or None].

        ``verdicts``: [(host, status, reasons, verified_at, state, answered)] where ``host``
        is what :meth:`claim_due` returned for the round. A verdict is written only while
        the host still carries this round's claim (``attested_by`` = ``worker`` and the
        claimed ``next_attest_at``), the AK it appraised with and the status and reasons
        it was claimed with; else nothing is written for it and its entry is None. The
        status or reasons changed: the previous status, and a history row (trimmed to
        ``history_limit`` per host). Unchanged: the status, no history row.
        """
        if not verdicts:
            return []
        hosts = models.Host.__table__
        history = models.VerdictHistory.__table__
        owned = sa.and_(hosts.c.name == sa.bindparam('b_name'),
                        hosts.c.attested_by == sa.bindparam('b_worker'),
                        hosts.c.next_attest_at == sa.bindparam('b_token'),
                        hosts.c.ak_name == sa.bindparam('b_ak'),
                        hosts.c.status == sa.bindparam('b_status'),
                        hosts.c.reasons == sa.bindparam('b_reasons'))
        groups = {}         # same SET columns: one executemany
        changed = []
        results = [None] * len(verdicts)
        for i, (host, status, reasons, verified_at, state, answered) in enumerate(verdicts):
            reasons_json, values = _verdict_columns(reasons, verified_at, state, answered)
            params = dict(values, b_name=host.name, b_worker=worker,
                          b_token=host.next_attest_at, b_ak=host.ak_name,
                          b_status=host.status, b_reasons=host.reasons)
            if status == host.status and reasons_json == host.reasons:
                groups.setdefault(tuple(sorted(values)), []).append((i, params))
            else:
                params.update(status=status, reasons=reasons_json)
                changed.append((i, params, host, status, reasons_json, verified_at, state))
        with self._engine().begin() as conn:
            for keys, items in groups.items():
                stmt = hosts.update().where(owned)     # SET: the parameters' columns
                for start in range(0, len(items), _UPDATE_EACH_ROWS):
                    chunk = items[start:start + _UPDATE_EACH_ROWS]
                    if len(chunk) > 1 and _update_each(
                            conn, keys, [p for _, p in chunk], worker) == len(chunk):
                        for i, _ in chunk:
                            results[i] = verdicts[i][1]
                        continue
                    # one at a time (idempotent: an unchanged verdict's condition holds)
                    for i, p in chunk:
                        if conn.execute(stmt, p).rowcount == 1:
                            results[i] = verdicts[i][1]
            rows = []
            for i, params, host, status, reasons_json, verified_at, state in changed:
                if conn.execute(hosts.update().where(owned), params).rowcount != 1:
                    continue
                results[i] = host.status
                rows.append({'host': host.name, 'status': status, 'reasons': reasons_json,
                             'verified_at': verified_at,
                             'reset_count': (state.reset_count if state is not None
                                             else host.reset_count),
                             'worker': worker})
            if rows:
                conn.execute(history.insert(), rows)
                for row in rows:
                    self._trim_history_core(conn, row['host'], history_limit)
        return results

    @staticmethod
    def _trim_history_core(conn, name, limit):
        history = models.VerdictHistory.__table__
        cut = conn.execute(sa.select(history.c.id).where(history.c.host == name)
                           .order_by(history.c.id.desc()).offset(limit).limit(1)).scalar()
        if cut is not None:
            conn.execute(history.delete().where(history.c.host == name,
                                                history.c.id <= cut))

    # ------------------------------------------------------------------ verdicts
    @staticmethod
    def host_state(host):
        """The appraisal HostState a host row keeps (see :func:`_state_columns`).

        A stored value that is not what this module writes raises StoredStateError (the
        round is untrusted rather than appraised against a forgotten clock).
        """
        from tclouds_openstack.attestation.appraisal import core
        try:
            return core.HostState(
                reset_count=host.reset_count, ima_offset=host.ima_offset or 0,
                ima_pcr=bytes.fromhex(host.ima_pcr) if host.ima_pcr else None,
                restart_count=host.restart_count,
                clock=_uint64(host.tpm_clock), safe=host.clock_safe,
                firmware_version=_uint64(host.firmware_version))
        except (TypeError, ValueError) as e:
            raise StoredStateError('the stored TPM state of host %s is unreadable (%s): '
                                   'not appraised against it' % (host.name, e))

    @_guard
    def save_verdict(self, name, status, reasons, verified_at, worker, state=None,
                     answered=True, history_limit=1000, ak_name=None):
        """Store the verdict of one round; returns the previous status (None if gone).

        ``state`` (appraisal HostState) is stored only when given (a successful appraisal).
        A history row is added when the status or the reasons change. ``ak_name``: the AK
        the round appraised with; when the host's AK was replaced meanwhile (activation of
        a new AK) the verdict is about an old quote chain and is not stored (None).
        """
        reasons_json, values = _verdict_columns(reasons, verified_at, state, answered)
        with self._writer() as session:
            # the common case, nothing changed: one UPDATE, no read, no history row
            same = session.query(models.Host).filter(
                models.Host.name == name, models.Host.status == status,
                models.Host.reasons == reasons_json)
            if ak_name is not None:
                same = same.filter(models.Host.ak_name == ak_name)
            if same.update(values, synchronize_session=False):
                return status
            host = session.get(models.Host, name)
            if host is None or ak_name is not None and host.ak_name != ak_name:
                return None
            previous = host.status
            previous_reasons = host.reasons
            host.status = status
            host.reasons = json.dumps(list(reasons))
            host.verified_at = verified_at
            if answered:
                host.last_answer_at = verified_at
            if state is not None:
                for key, value in _state_columns(state).items():
                    setattr(host, key, value)
            if previous != status or previous_reasons != host.reasons:
                session.add(models.VerdictHistory(host=name, status=status,
                                                  reasons=host.reasons,
                                                  verified_at=verified_at,
                                                  reset_count=host.reset_count, worker=worker))
                session.flush()
                self._trim_history(session, name, history_limit)
            return previous

    @staticmethod
    def _trim_history(session, name, limit):
        ids = [r[0] for r in session.query(models.VerdictHistory.id)
               .filter_by(host=name).order_by(models.VerdictHistory.id.desc())
               .offset(limit).limit(1).all()]
        if ids:
            session.query(models.VerdictHistory).filter(
                models.VerdictHistory.host == name,
                models.VerdictHistory.id <= ids[0]).delete(synchronize_session=False)

    @_guard
    def history(self, name, limit=100):
        with self._reader() as session:
            if session.get(models.Host, name) is None:
                raise exception.NotFound('no host %s is registered' % name)
            rows = (session.query(models.VerdictHistory).filter_by(host=name)
                    .order_by(models.VerdictHistory.id.desc()).limit(limit).all())
            for row in rows:
                session.expunge(row)
            return rows

    # ------------------------------------------------------------------ policies
    @_guard
    def create_policy(self, name, tpm_policy, runtime_policy, mb_refstate, mb_engine=None,
                      allow_unorderly_shutdown=False):
        with self._writer() as session:
            if session.get(models.Policy, name) is not None:
                raise exception.Conflict('policy %s exists; delete it first' % name)
            session.add(models.Policy(name=name, tpm_policy=tpm_policy,
                                      runtime_policy=runtime_policy, mb_refstate=mb_refstate,
                                      mb_engine=mb_engine,
                                      allow_unorderly_shutdown=bool(allow_unorderly_shutdown),
                                      created_at=utcnow()))
            # hosts under this policy name are re-appraised at once
            session.query(models.Host).filter_by(policy=name).update(
                {'next_attest_at': utcnow()}, synchronize_session=False)

    @_guard
    def get_policy(self, name):
        with self._reader() as session:
            policy = session.get(models.Policy, name)
            if policy is None:
                raise exception.NotFound('no policy %s' % name)
            session.expunge(policy)
            return policy

    @_guard
    def find_policy(self, name):
        with self._reader() as session:
            policy = session.get(models.Policy, name)
            if policy is not None:
                session.expunge(policy)
            return policy

    @_guard
    def verdict_times(self):
        """[(name, status, verified_at)] of every host: a light read for monitoring."""
        with self._reader() as session:
            return [tuple(r) for r in session.query(models.Host.name, models.Host.status,
                                                    models.Host.verified_at)]

    @_guard
    def count_active(self):
        """How many hosts are active (attested by the workers)."""
        hosts = models.Host.__table__
        with self._engine().connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(hosts)
                                .where(hosts.c.registration == models.ACTIVE)).scalar()

    @_guard
    def policy_version(self, name):
        """(created_at, sizes) of policy ``name`` without reading its documents, or None."""
        with self._engine().connect() as conn:
            return _policy_versions(conn, [name]).get(name)

    @_guard
    def list_policies(self):
        with self._reader() as session:
            rows = session.query(models.Policy).order_by(models.Policy.name).all()
            for row in rows:
                session.expunge(row)
            return rows

    @_guard
    def delete_policy(self, name):
        with self._writer() as session:
            if not session.query(models.Policy).filter_by(name=name).delete():
                raise exception.NotFound('no policy %s' % name)
