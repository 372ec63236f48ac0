"""Registration bound by the operator, at the store: enrolment, approval, one EK per host,
no downgrade of a proven host by a second registration, credentials of enrolled hosts.

The registrar's cryptographic checks run against real swtpm in
tests/functional/attestation/test_registration_attacks.py; here the EK is bytes and its
hash a SHA-256 of them.
"""
import hashlib

import pytest
import sqlalchemy as sa

from tclouds_openstack.attestation.service import models
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.common import db
from tclouds_openstack.common import exception


def ek(name):
    public = ('ek-%s' % name).encode()
    return public, hashlib.sha256(public).hexdigest()


@pytest.fixture
def store(tmp_path):
    store = store_mod.Store('sqlite:///%s' % (tmp_path / 'attestation.sqlite'))
    store.migrate()
    return store


def register(store, name, ek_name=None, ak='aa', challenge='c1', **kwargs):
    public, digest = ek(ek_name or name)
    store.register(name, public, digest, None, b'ak-' + ak.encode(), ak, challenge, **kwargs)


def test_enrolled_host_becomes_active(store):
    store.enrol('compute-1', ek('compute-1')[1])
    register(store, 'compute-1')
    assert store.activate('compute-1', 'aa', 'c1') == models.ACTIVE
    assert store.get_host('compute-1').registration == models.ACTIVE


def test_unenrolled_host_awaits_approval_until_approved(store):
    register(store, 'compute-1')
    assert store.activate('compute-1', 'aa', 'c1') == models.AWAITING_APPROVAL
    assert store.due_hosts(store_mod.utcnow(), 10) == []        # never attested
    with pytest.raises(exception.Conflict) as exc:
        store.approve('compute-1', ek_sha256=ek('other')[1])
    assert 'not the EK sha256:%s you approve' % ek('other')[1] in exc.value.message
    store.approve('compute-1', ek_sha256=ek('compute-1')[1], credentials=['u1'])
    host = store.get_host('compute-1')
    assert host.registration == models.ACTIVE
    enrolment, credentials = store.get_enrolment('compute-1')
    assert (enrolment.origin, credentials) == (models.APPROVED, ['u1'])


def test_refuse_mode_refuses_unenrolled_names(store):
    with pytest.raises(exception.Conflict) as exc:
        register(store, 'compute-1', allow_unenrolled=False)
    assert 'host compute-1 is not enrolled' in exc.value.message
    assert 'openstack attestation host enroll compute-1 --ek-sha256' in exc.value.message
    assert store.list_hosts() == []


def test_enrolled_name_refuses_another_ek(store):
    store.enrol('compute-new', ek('compute-new')[1])
    with pytest.raises(exception.Conflict) as exc:
        register(store, 'compute-new', ek_name='compute-b')
    assert 'enrolled with the EK sha256:%s' % ek('compute-new')[1] in exc.value.message
    assert store.list_hosts() == []
    register(store, 'compute-new')      # the genuine TPM still registers
    assert store.activate('compute-new', 'aa', 'c1') == models.ACTIVE


def test_one_ek_is_one_host(store):
    store.enrol('compute-b', ek('compute-b')[1])
    register(store, 'compute-b')
    store.activate('compute-b', 'aa', 'c1')
    # B's TPM claims a name nobody enrolled, and a name enrolled for nobody else
    for name in ('compute-x', 'compute-y'):
        with pytest.raises(exception.Conflict) as exc:
            register(store, name, ek_name='compute-b')
        assert 'is enrolled for host compute-b, not %s' % name in exc.value.message
    # an EK registered (not enrolled) under one name cannot take a second
    register(store, 'compute-c')
    with pytest.raises(exception.Conflict) as exc:
        register(store, 'compute-d', ek_name='compute-c')
    assert 'is registered as host compute-c' in exc.value.message
    # nor be enrolled for a second name
    with pytest.raises(exception.Conflict) as exc:
        store.enrol('compute-z', ek('compute-b')[1])
    assert 'enrolled for host compute-b' in exc.value.message
    with pytest.raises(exception.Conflict):
        store.enrol('compute-z', ek('compute-c')[1])
    assert sorted(h.name for h in store.list_hosts()) == ['compute-b', 'compute-c']


def test_second_registration_never_downgrades_a_proven_host(store):
    store.enrol('compute-1', ek('compute-1')[1])
    register(store, 'compute-1')
    store.activate('compute-1', 'aa', 'c1')
    store.save_verdict('compute-1', 'trusted', [], store_mod.utcnow(), 'w')
    # a replay of the host's EK with another AK (the attacker cannot activate it)
    register(store, 'compute-1', ak='ee', challenge='c2')
    host = store.get_host('compute-1')
    assert (host.registration, host.status, host.ak_name) == (models.ACTIVE, 'trusted', 'aa')
    assert host.pending_ak_name == 'ee'
    assert store.activate('compute-1', 'ee', 'wrong') is None
    assert store.get_host('compute-1').ak_name == 'aa'
    # the genuine agent registers a new AK and activates it: swapped, verdict kept
    register(store, 'compute-1', ak='ff', challenge='c3')
    assert store.activate('compute-1', 'ee', 'c3') is None      # the proof names its AK
    assert store.activate('compute-1', 'ff', 'c3') == models.ACTIVE
    host = store.get_host('compute-1')
    assert (host.ak_name, host.pending_ak_name, host.status) == ('ff', None, 'trusted')
    assert host.ak_public == b'ak-ff' and host.ima_offset == 0


def test_name_bound_to_its_first_ek(store):
    register(store, 'compute-1')
    with pytest.raises(exception.Conflict) as exc:
        register(store, 'compute-1', ek_name='other')
    assert 'registered with another endorsement key' in exc.value.message
    with pytest.raises(exception.Conflict) as exc:
        store.enrol('compute-1', ek('other')[1])
    assert 'registered with the EK sha256:%s' % ek('compute-1')[1] in exc.value.message


def test_credentials_stand_for_one_host(store):
    store.enrol('compute-1', ek('compute-1')[1], ['user-1', 'appcred-1'])
    store.enrol('compute-2', ek('compute-2')[1], ['user-2'])
    assert store.host_for_credential('appcred-1') == 'compute-1'
    assert store.host_for_credential('user-2') == 'compute-2'
    assert store.host_for_credential('nobody') is None
    with pytest.raises(exception.Conflict) as exc:
        store.enrol('compute-2', ek('compute-2')[1], ['user-1'])
    assert 'credential user-1 already stands for host compute-1' in exc.value.message
    store.enrol('compute-1', ek('compute-1')[1], ['user-1b'])     # replaces the list
    assert store.host_for_credential('user-1') is None
    assert store.host_for_credential('user-1b') == 'compute-1'
    assert [(e.host, c) for e, c in store.list_enrolments()] == [
        ('compute-1', ['user-1b']), ('compute-2', ['user-2'])]
    store.delete_host('compute-1')      # enrolled, never registered: forgotten too
    assert store.host_for_credential('user-1b') is None
    with pytest.raises(exception.NotFound):
        store.get_enrolment('compute-1')
    with pytest.raises(exception.NotFound):
        store.delete_host('compute-1')


def test_upgrade_moves_first_come_registrations_to_approval(tmp_path):
    """0001 -> 0002: no first-come registration stays trusted; shared EKs lose their hash."""
    url = 'sqlite:///%s' % (tmp_path / 'old.sqlite')
    import alembic.command
    import alembic.config
    config = alembic.config.Config()
    config.set_main_option('script_location', store_mod.MIGRATIONS)
    config.set_main_option('sqlalchemy.url', url)
    config.set_main_option('version_table', store_mod.VERSION_TABLE)
    alembic.command.upgrade(config, '0001')
    engine = db.create_engine(url)
    with engine.begin() as conn:
        for name, public in (('a', b'x'), ('b', b'y'), ('c', b'y')):
            conn.execute(sa.text(
                "INSERT INTO attestation_hosts (name, registration, ek_public, ak_public, "
                "ak_name, registered_at, status, reasons, ima_offset, next_attest_at) VALUES "
                "(:n, 'active', :ek, 'ak', 'aa', '2026-01-01', 'trusted', '[]', 0, "
                "'2026-01-01')"), {'n': name, 'ek': public})
    engine.dispose()
    store = store_mod.Store(url)
    store.migrate()
    assert [(h.name, h.registration) for h in store.list_hosts()] == [
        ('a', 'awaiting_approval'), ('b', 'awaiting_approval'), ('c', 'awaiting_approval')]
    with pytest.raises(exception.Conflict) as exc:
        store.approve('b')
    assert 'unreadable or shared' in exc.value.message


def test_verdict_of_a_round_with_a_replaced_ak_is_not_stored(store):
    """A round that began before a new AK was activated appraised the old quote chain."""
    store.enrol('compute-1', ek('compute-1')[1])
    register(store, 'compute-1')
    store.activate('compute-1', 'aa', 'c1')
    store.save_verdict('compute-1', 'trusted', [], store_mod.utcnow(), 'w', ak_name='aa')
    register(store, 'compute-1', ak='bb', challenge='c2')
    assert store.activate('compute-1', 'bb', 'c2') == models.ACTIVE
    # the in-flight round (old AK 'aa') finds the agent quoting with 'bb': signature fails
    assert store.save_verdict('compute-1', 'untrusted', ['quote not signed by this AK'],
                              store_mod.utcnow(), 'w', ak_name='aa') is None
    assert store.get_host('compute-1').status == 'trusted'
    assert store.save_verdict('compute-1', 'trusted', [], store_mod.utcnow(), 'w',
                              ak_name='bb') == 'trusted'
