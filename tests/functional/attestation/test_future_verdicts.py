"""A verdict stamped in the future is not fresh (issue 11, review point 7).

A worker whose clock runs ahead, a restored database, or anyone who can write a verdict's
time makes it look fresh for as long as the timestamp lies ahead: freshness checks that
only compare ``age > max_age`` accept a negative age. Each reader of verdict times is
tried: the attestation API's own view over HTTP with the real store and the ``tclouds``
backend a consumer uses, a Keylime verifier answering with a future
``last_successful_attestation``, and the rule every consumer shares
(``backends.base.check_trusted``), with the configurable skew.
"""
import datetime
import http.server
import json
import threading
import time

from oslo_config import cfg
import pytest

from tclouds_openstack.attestation import backends
from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation.backends import tclouds as tclouds_backend
from tclouds_openstack.attestation import client as att_client
from tclouds_openstack.attestation.service import api as att_api
from tclouds_openstack.attestation.service import models as att_models
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf

HOUR = datetime.timedelta(hours=1)


def _conf(**attestation):
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    conf([], project='tclouds-test', default_config_files=[])
    for name, value in attestation.items():
        conf.set_override(name, value, group='attestation')
    return conf


def add_host(store, name, status, verified_at):
    """A registered, active host whose last verdict a worker stored at ``verified_at``."""
    now = store_mod.utcnow()
    with store._writer() as session:
        session.add(att_models.Host(
            name=name, registration='active', ek_public=b'ek-' + name.encode(),
            ak_public=b'ak', ak_name='00' * 34, registered_at=now, activated_at=now,
            next_attest_at=now + HOUR, status=status, reasons='[]', verified_at=verified_at,
            last_answer_at=verified_at, ima_offset=0))


@pytest.fixture
def attestation_api(tmp_path, personas):
    """The attestation API on a free port over a real store, behind keystonemiddleware.

    The consumer's backend calls it with the service persona's real Keystone token.
    Yields (conf, store, backend).
    """
    policy.reset()
    conf = personas.api_conf(tmp_path, '[attestation]\nconnection = sqlite:///%s\n'
                             'max_verdict_age = 120\n' % (tmp_path / 'att.sqlite'))
    store = store_mod.Store(conf.attestation.connection)
    store.migrate()
    server = wsgi.make_server(att_api.create_app(conf, store), '127.0.0.1', 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = att_client.AttestationClient(
        personas.session('service'),
        endpoint_override='http://127.0.0.1:%d' % server.server_port)
    try:
        yield conf, store, tclouds_backend.TCloudsBackend(conf, client=client)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        policy.reset()


def test_attestation_api_shows_future_trust_as_unknown(attestation_api):
    conf, store, backend = attestation_api
    now = store_mod.utcnow()
    add_host(store, 'ahead', 'trusted', now + HOUR)            # a worker's clock 1 h fast
    add_host(store, 'slightly-ahead', 'trusted', now + datetime.timedelta(seconds=2))
    add_host(store, 'now', 'trusted', now)
    verdicts = backend.get_verdicts(['ahead', 'slightly-ahead', 'now'])
    ahead = verdicts['ahead']
    assert ahead.status == base.UNKNOWN, ahead
    assert 'from the future' in ahead.reasons[0]
    assert 'limit 5 s of clock skew' in ahead.reasons[0]
    trusted, reason = base.check_trusted(ahead, 120)
    assert not trusted and 'unknown' in reason
    # within the configured skew (default 5 s) NTP-level differences stay trusted
    for name in ('slightly-ahead', 'now'):
        assert base.check_trusted(verdicts[name], 120)[0], verdicts[name]


class _Keylime(http.server.BaseHTTPRequestHandler):
    """Keylime's verifier API shape: GET /v2/agents/<uuid>; the agent attested in an hour."""

    def do_GET(self):
        body = json.dumps({'code': 200, 'results': {
            'operational_state': 3,
            'last_successful_attestation': int(time.time()) + 3600}}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_keylime_attestation_time_in_the_future_is_refused():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Keylime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conf = _conf(backend='keylime')
        conf.set_override('verifier_url', 'http://127.0.0.1:%d' % server.server_port,
                          group='keylime')
        conf.set_override('host_agents', {'h1': 'agent-1'}, group='keylime')
        verdict = backends.get_backend(conf).get_verdicts(['h1'])['h1']
    finally:
        server.shutdown()
        server.server_close()
    assert verdict.status == base.TRUSTED      # what Keylime says...
    trusted, reason = base.check_trusted(verdict, 120)
    assert not trusted                         # ...is no proof of trust now
    assert reason.startswith('attestation verdict of host h1 is from the future:'), reason


@pytest.mark.parametrize('ahead, skew, fresh', [
    (0, 5, True), (4, 5, True), (6, 5, False), (3600, 5, False), (20, 30, True),
    (1, 0, False),
])
def test_skew_is_the_only_allowance(ahead, skew, fresh):
    now = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.timezone.utc)
    verdict = base.Verdict(host='h', status=base.TRUSTED,
                           verified_at=now + datetime.timedelta(seconds=ahead))
    trusted, reason = base.check_trusted(verdict, 120, now=now, max_skew=skew)
    assert trusted is fresh, reason
    if not fresh:
        assert 'from the future' in reason and 'limit %d s' % skew in reason


def test_skew_option_reaches_the_api_view(attestation_api):
    conf, store, backend = attestation_api
    add_host(store, 'ahead20', 'trusted', store_mod.utcnow() + datetime.timedelta(seconds=20))
    assert backend.get_verdicts(['ahead20'])['ahead20'].status == base.UNKNOWN
    # an operator with a known, bounded skew raises [attestation] max_clock_skew
    conf.set_override('max_clock_skew', 60, group='attestation')
    assert backend.get_verdicts(['ahead20'])['ahead20'].status == base.TRUSTED
