"""The migrated attestation schema holds every value the code stores.

sqlite does not enforce ``VARCHAR(n)``; MariaDB/MySQL in strict mode refuse a longer value
(``awaiting_approval`` in the 16-character registration column did, fixed by 0003). So the
schema the migrations build must declare every string column as wide as the model, and
every state constant must fit its column.
"""
import sqlalchemy as sa

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation.service import models
from tclouds_openstack.attestation.service import store as store_mod

STATES = [
    (models.Host.registration, (models.PENDING, models.AWAITING_APPROVAL, models.ACTIVE)),
    (models.Host.status, base.STATUSES),
    (models.VerdictHistory.status, base.STATUSES),
    (models.Enrolment.origin, (models.ENROLLED, models.APPROVED)),
]


def test_every_state_fits_its_column():
    for column, values in STATES:
        length = column.property.columns[0].type.length
        for value in values:
            assert len(value) <= length, (column, value, length)


def test_migrations_build_the_models_string_widths(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'attestation.sqlite')
    store_mod.Store(url).migrate()
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        for table in models.Base.metadata.sorted_tables:
            migrated = {c['name']: c['type'] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if isinstance(column.type, sa.String) and column.type.length:
                    assert migrated[column.name].length == column.type.length, (
                        table.name, column.name, migrated[column.name], column.type)
    finally:
        engine.dispose()
