"""Database plumbing: an oslo.db engine facade per service and alembic migrations.

Each service keeps its SQLAlchemy models and an alembic ``migrations`` directory in its
own package, and its own version table, so several services may share one database.

A SQLite database file (verdicts, requirements, the secure log) is created 0600 in a
directory created 0700 before SQLite opens it (:func:`secure_sqlite`); SQLite gives its
journal and WAL files the database file's mode.
"""
import alembic.command
import alembic.config
from oslo_db.sqlalchemy import enginefacade
from oslo_db.sqlalchemy import engines
import sqlalchemy.engine

from tclouds_openstack.common import fileutils


def secure_sqlite(connection):
    """For a SQLite file URL: create the file 0600 (directories 0700) if it is missing.

    Every engine of this module calls it; other URLs (and in-memory SQLite) are left alone.
    """
    try:
        url = sqlalchemy.engine.make_url(connection)
    except Exception:       # let SQLAlchemy report a malformed URL where it is used
        return
    path = url.database
    if (url.get_backend_name() != 'sqlite' or not path or path == ':memory:'
            or path.startswith('file:') or url.query.get('mode') == 'memory'):
        return
    fileutils.private_file(path, 'database')


def make_facade(connection):
    """A transaction context bound to ``connection`` (a SQLAlchemy URL)."""
    secure_sqlite(connection)
    ctx = enginefacade.transaction_context()
    ctx.configure(connection=connection, sqlite_fk=True)
    return ctx


def create_engine(connection):
    """A standalone engine with oslo.db's settings (pool, sqlite pragmas, reconnects)."""
    secure_sqlite(connection)
    return engines.create_engine(connection, sqlite_fk=True)


def migrate(connection, script_location, version_table='alembic_version'):
    """Run alembic ``upgrade head`` for one service's migrations against ``connection``."""
    secure_sqlite(connection)
    config = alembic.config.Config()
    config.set_main_option('script_location', script_location)
    config.set_main_option('sqlalchemy.url', connection.replace('%', '%%'))
    config.set_main_option('version_table', version_table)
    alembic.command.upgrade(config, 'head')


def revisions(connection, script_location, version_table='alembic_version'):
    """(current, head) alembic revisions of one service's schema; current None if empty."""
    import alembic.runtime.migration
    import alembic.script
    import sqlalchemy

    secure_sqlite(connection)
    config = alembic.config.Config()
    config.set_main_option('script_location', script_location)
    head = alembic.script.ScriptDirectory.from_config(config).get_current_head()
    engine = sqlalchemy.create_engine(connection, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            context = alembic.runtime.migration.MigrationContext.configure(
                conn, opts={'version_table': version_table})
            return context.get_current_revision(), head
    finally:
        engine.dispose()


def run_env_migrations(target_metadata):
    """The body of every service's alembic ``env.py``, so it is written once::

        from tclouds_openstack.common import db
        from tclouds_openstack.<area>.db import models
        db.run_env_migrations(models.Base.metadata)
    """
    from alembic import context
    import sqlalchemy

    config = context.config
    engine = sqlalchemy.create_engine(config.get_main_option('sqlalchemy.url'),
                                      poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          version_table=config.get_main_option('version_table'),
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
