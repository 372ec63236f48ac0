"""The keylime backend against a real HTTP server speaking Keylime's verifier API shape."""
import http.server
import json
import threading
import time

from oslo_config import cfg
import pytest

from tclouds_openstack.attestation import backends
from tclouds_openstack.attestation.backends import base
from tclouds_openstack import conf as tconf

AGENTS = {
    'good': {'operational_state': 3, 'last_successful_attestation': None},
    'bad': {'operational_state': 9, 'last_event_id': 'ima.validation.ima-ng.not_in_allowlist'},
    'starting': {'operational_state': 1},
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        agent = self.path.rsplit('/', 1)[-1]
        if agent not in AGENTS:
            self.send_response(404)
            self.end_headers()
            return
        results = dict(AGENTS[agent])
        if 'last_successful_attestation' in results:
            results['last_successful_attestation'] = int(time.time())
        body = json.dumps({'code': 200, 'results': results}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def verifier():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_port
    finally:
        server.shutdown()
        server.server_close()


def make_conf(url):
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    conf([], project='tclouds-test', default_config_files=[])
    conf.set_override('backend', 'keylime', group='attestation')
    conf.set_override('verifier_url', url, group='keylime')
    conf.set_override('host_agents', {'h1': 'good', 'h2': 'bad', 'h3': 'starting',
                                      'h4': 'gone'}, group='keylime')
    return conf


def test_keylime_states_map_to_verdicts(verifier):
    backend = backends.get_backend(make_conf(verifier))
    verdicts = backend.get_verdicts(['h1', 'h2', 'h3', 'h4', 'h5'])
    assert base.check_trusted(verdicts['h1'], 60)[0]
    assert verdicts['h2'].status == 'untrusted'
    assert 'not_in_allowlist' in verdicts['h2'].reasons[0]
    assert [verdicts[h].status for h in ('h3', 'h4', 'h5')] == ['unknown'] * 3


def test_keylime_unreachable_fails_closed():
    backend = backends.get_backend(make_conf('http://127.0.0.1:1'))
    with pytest.raises(base.BackendUnavailable):
        backend.get_verdicts(['h1'])


def test_keylime_credentials_come_from_the_operators_mapping():
    """Keylime enrols no Keystone credentials: [keylime] host_credentials is the mapping."""
    conf = make_conf('http://127.0.0.1:1')
    assert backends.get_backend(conf).host_for_credential('u-1') is None     # fail closed
    conf.set_override('host_credentials', {'u-1': 'h1', 'appcred-2': 'h2'}, group='keylime')
    backend = backends.get_backend(conf)
    assert backend.host_for_credential('u-1') == 'h1'
    assert backend.host_for_credential('appcred-2') == 'h2'
    assert backend.host_for_credential('h1') is None        # a host name is no credential
