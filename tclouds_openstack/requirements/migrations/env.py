"""alembic environment of the trust requirements (see common.db.run_env_migrations)."""
from tclouds_openstack.common import db
from tclouds_openstack.requirements import models

db.run_env_migrations(models.Base.metadata)
