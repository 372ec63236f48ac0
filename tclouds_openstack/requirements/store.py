"""Database access for stored project requirements (one short transaction per call)."""
import datetime
import json
import os

from oslo_db import exception as db_exc
import sqlalchemy as sa

from tclouds_openstack.common import db
from tclouds_openstack.common import exception
from tclouds_openstack.requirements import models

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'migrations')
VERSION_TABLE = 'requirements_alembic_version'


class _Context(object):
    """enginefacade needs an object to hang its transaction state on."""


def _guard(fn):
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (db_exc.DBConnectionError, sa.exc.OperationalError,
                sa.exc.InterfaceError) as e:
            raise exception.ServiceUnavailable('requirements database unavailable: %s'
                                               % str(e).splitlines()[0][:200])
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def to_record(row):
    return {
        'project_id': row.project_id,
        'trusted_host': row.trusted_host,
        'jurisdictions': json.loads(row.jurisdictions) if row.jurisdictions else None,
        'updated_at': row.updated_at.replace(tzinfo=datetime.timezone.utc).isoformat(),
        'updated_by': row.updated_by,
    }


class Store(object):
    def __init__(self, connection):
        self.connection = connection
        self.facade = db.make_facade(connection)

    def migrate(self):
        db.migrate(self.connection, MIGRATIONS, version_table=VERSION_TABLE)

    @_guard
    def get(self, project_id):
        with self.facade.reader.using(_Context()) as session:
            row = session.get(models.ProjectRequirement, project_id)
            return to_record(row) if row else None

    @_guard
    def list(self):
        with self.facade.reader.using(_Context()) as session:
            rows = session.query(models.ProjectRequirement).order_by(
                models.ProjectRequirement.project_id)
            return [to_record(r) for r in rows]

    @_guard
    def put(self, project_id, trusted_host, jurisdictions, updated_by):
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        with self.facade.writer.using(_Context()) as session:
            row = session.get(models.ProjectRequirement, project_id)
            if row is None:
                row = models.ProjectRequirement(project_id=project_id)
                session.add(row)
            row.trusted_host = trusted_host
            row.jurisdictions = (json.dumps(sorted(jurisdictions))
                                 if jurisdictions is not None else None)
            row.updated_at = now
            row.updated_by = updated_by
            session.flush()
            return to_record(row)

    @_guard
    def delete(self, project_id):
        with self.facade.writer.using(_Context()) as session:
            row = session.get(models.ProjectRequirement, project_id)
            if row is None:
                return False
            session.delete(row)
            return True
