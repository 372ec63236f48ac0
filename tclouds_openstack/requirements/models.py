"""SQLAlchemy model of stored project requirements (own tables, own alembic version table)."""
import sqlalchemy as sa
from sqlalchemy import orm

Base = orm.declarative_base()


class ProjectRequirement(Base):
    """One project's requirement.

    ``jurisdictions`` keeps the codes and groups as given (JSON list, e.g. ["EU"]) so the
    API shows what the tenant wrote; NULL = anywhere.
    """

    __tablename__ = 'trust_requirements'

    project_id = sa.Column(sa.String(64), primary_key=True)
    trusted_host = sa.Column(sa.Boolean, nullable=True)
    jurisdictions = sa.Column(sa.Text, nullable=True)
    updated_at = sa.Column(sa.DateTime, nullable=False)
    updated_by = sa.Column(sa.String(64), nullable=True)
