"""``openstack attestation ...`` commands against a real attestation API server (noauth)."""
import argparse
import json
import threading

from keystoneauth1 import session as ks_session
from osc_lib import exceptions
import pytest

from tclouds_openstack.attestation.service import api
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack.osc.v1 import attestation as osc
from tests.functional.attestation import conftest as fx


class _App(object):
    def __init__(self, endpoint, roles):
        session = ks_session.Session()
        session.additional_headers = {'X-Roles': roles, 'X-User-Id': 'u', 'X-Project-Id': 'p'}
        if roles == 'reader':           # an operator reader: system scope
            session.additional_headers = {'X-Roles': roles, 'X-User-Id': 'u',
                                          'OpenStack-System-Scope': 'all'}
        self.client_manager = argparse.Namespace(session=session, interface=None,
                                                 region_name=None)
        self.options = argparse.Namespace(os_attestation_endpoint=endpoint)


def _run(command_class, app, *argv):
    command = command_class(app, None)
    parsed = command.get_parser('openstack').parse_args(list(argv))
    return command.take_action(parsed)


@pytest.fixture
def server(tmp_path):
    policy.reset()
    conf = fx.make_conf('sqlite:///%s' % (tmp_path / 'a.sqlite'))
    conf.set_override('auth_strategy', 'noauth', group='api')
    store = store_mod.Store(conf.attestation.connection)
    store.migrate()
    store.register('compute-1', b'ek', None, b'ak', 'aa', 'c')
    store.activate('compute-1', 'aa', 'c')
    store.save_verdict('compute-1', 'untrusted', ['ima: /tmp/x not allowed'],
                       store_mod.utcnow(), 'w1')
    httpd = wsgi.make_server(api.create_app(conf, store), '127.0.0.1', 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % httpd.server_port, tmp_path
    finally:
        httpd.shutdown()
        httpd.server_close()
        policy.reset()


def test_host_and_policy_commands(server):
    endpoint, tmp = server
    admin = _App(endpoint, 'admin')
    reader = _App(endpoint, 'reader')
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
    with pytest.raises(exceptions.CommandError) as err:
        _run(osc.AttestHost, reader, 'compute-1')
    assert '403' in str(err.value)
    bad = tmp / 'bad.json'
    bad.write_text(json.dumps({'7': ['zz']}))
    with pytest.raises(exceptions.CommandError) as err:
        _run(osc.CreatePolicy, admin, 'p2', '--tpm-policy', str(bad))
    assert 'tpm_policy.7[0]' in str(err.value)
    _run(osc.DeletePolicy, admin, 'p1')
    _run(osc.DeleteHost, admin, 'compute-1')
    assert _run(osc.ListHost, reader)[1] == []
