"""alembic environment of the attestation service (see common.db.run_env_migrations)."""
from tclouds_openstack.attestation.service import models
from tclouds_openstack.common import db

db.run_env_migrations(models.Base.metadata)
