"""``openstack attestation ...`` commands against a real attestation API server.

The API runs behind keystonemiddleware; the commands authenticate with real Keystone tokens
of the personas (tests/functional/personas.py): ``admin`` and the operator's reader
``system_reader`` (system scope). Who may call which route, persona by persona:
tests/functional/policy/test_matrix.py.
"""
import argparse
import json

from osc_lib import exceptions
import pytest

from tclouds_openstack.attestation.service import api
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.common import policy
from tclouds_openstack.osc.v1 import attestation as osc
from tests.functional.attestation import conftest as fx
from tests.functional import wsgi_thread


class _App(object):
    """What an OSC command sees of ``openstack``: the Keystone session of ``persona``."""

    def __init__(self, endpoint, personas, persona):
        self.client_manager = argparse.Namespace(session=personas.session(persona),
                                                 interface=None, region_name=None)
        self.options = argparse.Namespace(os_attestation_endpoint=endpoint)


def _run(command_class, app, *argv):
    command = command_class(app, None)
    parsed = command.get_parser('openstack').parse_args(list(argv))
    return command.take_action(parsed)


@pytest.fixture
def server(personas, tmp_path):
    """(URL of the attestation API behind the personas' Keystone, tmp_path, an App maker)."""
    policy.reset()
    conf = personas.api_conf(tmp_path, '[attestation]\nconnection = sqlite:///%s\n'
                             % (tmp_path / 'a.sqlite'))
    store = store_mod.Store(conf.attestation.connection)
    store.migrate()
    fx.simfleet.admit_host(store, 'compute-1', ak_name='aa')
    store.save_verdict('compute-1', 'untrusted', ['ima: /tmp/x not allowed'],
                       store_mod.utcnow(), 'w1')
    try:
        with wsgi_thread.serving(api.create_app(conf, store)) as url:
            yield url, tmp_path, lambda persona: _App(url, personas, persona)
    finally:
        policy.reset()


def test_host_and_policy_commands(server):
    endpoint, tmp, app = server
    admin, reader = app('admin'), app('system_reader')
    columns, rows = _run(osc.ListHost, reader)
    assert columns[:2] == ('host', 'status') and rows[0][:2] == ('compute-1', 'untrusted')
    keys, values = _run(osc.ShowHost, reader, 'compute-1')
    assert dict(zip(keys, values))['reasons'] == json.dumps(['ima: /tmp/x not allowed'])
    columns, rows = _run(osc.HostHistory, reader, 'compute-1')
    assert rows[0][1] == 'untrusted'
    doc = tmp / 'tpm.json'
    doc.write_text(json.dumps({'16': ['00' * 32]}))
    keys, values = _run(osc.CreatePolicy, admin, 'p1', '--tpm-policy', str(doc))
    assert dict(zip(keys, values))['name'] == 'p1'
    assert [r[0] for r in _run(osc.ListPolicy, reader)[1]] == ['p1']
    _run(osc.SetHost, admin, 'compute-1', '--policy', 'p1')
    _run(osc.AttestHost, admin, 'compute-1')
    for persona in ('system_reader', 'manager_a'):      # only the admin asks for attestation
        with pytest.raises(exceptions.CommandError) as err:
            _run(osc.AttestHost, app(persona), 'compute-1')
        assert '403' in str(err.value) and 'attestation:host:attest' in str(err.value)
    bad = tmp / 'bad.json'
    bad.write_text(json.dumps({'7': ['zz']}))
    with pytest.raises(exceptions.CommandError) as err:
        _run(osc.CreatePolicy, admin, 'p2', '--tpm-policy', str(bad))
    assert 'tpm_policy.7[0]' in str(err.value)
    _run(osc.DeletePolicy, admin, 'p1')
    _run(osc.DeleteHost, admin, 'compute-1')
    assert _run(osc.ListHost, reader)[1] == []


def _ek_certificate(path):
    """A certificate for a fresh RSA key (enrolment only reads the key it certifies)."""
    import datetime

    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'ek')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    from tclouds_openstack.attestation.service import registrar
    return registrar.key_sha256(key.public_key())


def test_enroll_and_approve_commands(server):
    endpoint, tmp, app = server
    admin, reader = app('admin'), app('system_reader')
    expected = _ek_certificate(tmp / 'ek.pem')
    keys, values = _run(osc.EnrollHost, admin, 'compute-2', '--ek-certificate',
                        str(tmp / 'ek.pem'), '--credential', 'user-2')
    shown = dict(zip(keys, values))
    assert (shown['ek_sha256'], shown['credentials']) == (expected, json.dumps(['user-2']))
    digest = 'ab' * 32
    _run(osc.EnrollHost, admin, 'compute-3', '--ek-sha256', 'SHA256:' + digest.upper(),
         '--credential', 'user-3a', '--credential', 'user-3b')
    keys, values = _run(osc.ShowEnrolment, reader, 'compute-3')
    assert dict(zip(keys, values))['ek_sha256'] == digest
    columns, rows = _run(osc.ListEnrolment, reader)
    assert [(r[0], r[2]) for r in rows] == [('compute-1', ''), ('compute-2', 'user-2'),
                                            ('compute-3', 'user-3a, user-3b')]
    # refusals say why: a credential of another host, a malformed hash, a reader, a file
    for argv, reason in (
            (('compute-4', '--ek-sha256', 'cd' * 32, '--credential', 'user-2'),
             'credential user-2 already stands for host compute-2'),
            (('compute-4', '--ek-sha256', 'xyz'), 'ek_sha256: must be the SHA-256'),
            (('compute-4', '--ek-certificate', str(tmp / 'missing.pem')),
             '--ek-certificate %s' % (tmp / 'missing.pem'))):
        with pytest.raises(exceptions.CommandError) as err:
            _run(osc.EnrollHost, admin, *argv)
        assert reason in str(err.value)
    with pytest.raises(exceptions.CommandError) as err:
        _run(osc.EnrollHost, reader, 'compute-4', '--ek-sha256', 'cd' * 32)
    assert '403' in str(err.value) and 'attestation:enrolment:create' in str(err.value)
    # a registration nobody enrolled waits; the admin approves the EK it checked
    store = store_mod.Store('sqlite:///%s' % (tmp / 'a.sqlite'))
    store.register('compute-5', b'ek-5', 'ee' * 32, None, b'ak', 'aa5', 'c5')
    assert store.activate('compute-5', 'aa5', 'c5') == 'awaiting_approval'
    with pytest.raises(exceptions.CommandError) as err:
        _run(osc.ApproveHost, admin, 'compute-5', '--ek-sha256', 'ff' * 32)
    assert 'registered the EK sha256:%s, not the EK sha256:%s' % ('ee' * 32, 'ff' * 32) \
        in str(err.value)
    keys, values = _run(osc.ApproveHost, admin, 'compute-5', '--ek-sha256', 'ee' * 32,
                        '--credential', 'user-5')
    shown = dict(zip(keys, values))
    assert (shown['registration'], shown['origin'], shown['credentials']) == (
        'active', 'approved', json.dumps(['user-5']))


def test_policy_engine_and_clock_policy_reach_the_verifier(server):
    """--mb-engine and --allow-unorderly-shutdown are stored and appraisal applies them."""
    from tclouds_openstack.attestation.service import verifier as verifier_mod
    from tests.unit.attestation import crafted_boot
    endpoint, tmp, app = server
    admin = app('admin')
    refstate = tmp / 'refstate.json'
    refstate.write_text(json.dumps(crafted_boot.good_refstate()))
    keys, values = _run(osc.CreatePolicy, admin, 'any-boot', '--mb-refstate', str(refstate),
                        '--mb-engine', 'accept-all', '--allow-unorderly-shutdown')
    shown = dict(zip(keys, values))
    assert (shown['mb_engine'], shown['allow_unorderly_shutdown']) == ('accept-all', True)
    keys, values = _run(osc.CreatePolicy, admin, 'golden', '--mb-refstate', str(refstate))
    shown = dict(zip(keys, values))
    assert (shown['mb_engine'], shown['allow_unorderly_shutdown']) == ('example', False)
    columns, rows = _run(osc.ListPolicy, admin)
    listed = {r[0]: dict(zip(columns, r)) for r in rows}
    assert listed['any-boot']['mb_engine'] == 'accept-all'
    # refusals name the field: an engine without the reference state it needs, an unknown
    # engine, a flag that is not a boolean
    for kwargs, field in (({'mb_engine': 'example'}, 'mb_refstate'),
                          ({'mb_engine': 'keylime-default'}, 'mb_engine'),
                          ({'mb_engine': ['accept-all']}, 'mb_engine'),
                          ({'allow_unorderly_shutdown': 'yes'}, 'allow_unorderly_shutdown')):
        with pytest.raises(exceptions.CommandError) as err:
            _run_client(admin, 'bad', **kwargs)
        assert field in str(err.value) and '400' in str(err.value), (kwargs, err.value)
    # the verifier parses what was stored
    cache = verifier_mod.PolicyCache(store_mod.Store('sqlite:///%s' % (tmp / 'a.sqlite')))
    parsed = cache.get('any-boot')
    assert (parsed.mb_engine, parsed.allow_unorderly_shutdown) == ('accept-all', True)
    parsed = cache.get('golden')
    assert (parsed.mb_engine, parsed.allow_unorderly_shutdown) == ('example', False)


def _run_client(app, name, **body):
    """POST /v1/policies with fields the OSC command would not let through."""
    client = osc._client(app)
    return osc._call(client.post, '/v1/policies', dict({'name': name}, **body))
