"""alembic environment of the secure log (see common.db.run_env_migrations)."""
from tclouds_openstack.common import db
from tclouds_openstack.securelog import models

db.run_env_migrations(models.Base.metadata)
