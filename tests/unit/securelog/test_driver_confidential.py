"""The notification driver without a broker (a transport that fails, then recovers) and
per-tenant AEAD: journaled entries survive outages in order, tokens never reach the log,
confidential payloads stay verifiable by everyone and readable only with the key."""
import base64
import json

from oslo_config import cfg
import pytest

from tclouds_openstack.conf import securelog as securelog_conf
from tclouds_openstack.securelog import confidential
from tclouds_openstack.securelog import driver as drivermod
from tclouds_openstack.securelog import ingest
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import sealing
from tclouds_openstack.securelog import store as storemod


class FlakyTransport(object):
    """Stands in for oslo.messaging's transport: down for ``failures`` sends."""

    def __init__(self, failures=0):
        self.failures = failures
        self.sent = []

    def _send_notification(self, target, ctxt, message, version, retry):
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError('broker down (test)')
        self.sent.append(message)


class FakeKey(object):
    def __init__(self, raw):
        self.raw = raw

    def get_encoded(self):
        return self.raw


class FakeKeyManager(object):
    def __init__(self, keys):
        self.keys = keys
        self.calls = 0

    def get(self, context, key_id):
        self.calls += 1
        return FakeKey(self.keys[key_id])


def _conf(tmp_path, **overrides):
    conf = cfg.ConfigOpts()
    securelog_conf.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override('source_state_dir', str(tmp_path / 'src'), group='securelog')
    conf.set_override('source_name', 'cinder-api@ctl', group='securelog')
    for k, v in overrides.items():
        conf.set_override(k, v, group='securelog')
    return conf


def _entries(transport):
    return [base64.b64decode(m['payload']['entry']) for m in transport.sent]


def test_journal_survives_an_outage_in_sequence_order(tmp_path):
    transport = FlakyTransport(failures=10 ** 6)
    drv = drivermod.SecureLogDriver(_conf(tmp_path), [], transport, flush_interval=3600)
    ctx = {'project_id': 'p1', 'auth_token': 'gAAAA-SECRET', 'user_id': 'u1'}
    for i in range(5):
        drv.notify(ctx, {'event_type': 'volume.create.end', 'payload': {'n': i},
                         'publisher_id': 'volume.ctl', 'message_id': 'm%d' % i}, 'INFO', None)
    # The broker is down: every sealed entry waits in the journal, none is lost.
    assert drv.pending() == 5 and transport.sent == []
    transport.failures = 0
    assert drv.flush() is True and drv.pending() == 0
    entries = [sealing.decode_entry(e) for e in _entries(transport)]
    assert [e.seq for e in entries] == [0, 1, 2, 3, 4]
    assert all(b'SECRET' not in e.payload for e in entries)
    assert json.loads(entries[2].payload)['context'] == {'project_id': 'p1', 'user_id': 'u1'}


def test_confidential_tenant_encrypted_yet_verifiable(tmp_path):
    key = bytes(range(32))
    conf = _conf(tmp_path, tenant_keys={'hospital': 'k-1'})
    km = FakeKeyManager({'k-1': key})
    encryptor = confidential.CastellanEncryptor(conf, key_manager=km)
    transport = FlakyTransport()
    drv = drivermod.SecureLogDriver(conf, [], transport, flush_interval=3600,
                                    encryptor=encryptor)
    for project in ('hospital', 'utility', 'hospital'):
        drv.notify({'project_id': project}, {'event_type': 'record.read',
                                             'payload': {'patient': 'Jane Roe'}}, 'INFO', None)
    entries = _entries(transport)
    decoded = [sealing.decode_entry(e) for e in entries]
    assert [bool(e.flags & sealing.FLAG_ENCRYPTED) for e in decoded] == [True, False, True]
    assert b'Jane Roe' not in decoded[0].payload and b'Jane Roe' in decoded[1].payload
    assert km.calls == 1    # cached per process
    plain = confidential.decrypt_payload(key, 'hospital', decoded[0].payload)
    assert json.loads(plain)['payload'] == {'patient': 'Jane Roe'}
    with pytest.raises(confidential.ConfidentialError, match='does not decrypt'):
        confidential.decrypt_payload(key, 'utility', decoded[0].payload)
    with pytest.raises(confidential.ConfidentialError, match='does not decrypt'):
        confidential.decrypt_payload(bytes(32), 'hospital', decoded[2].payload)
    # The auditor verifies all three without the tenant key.
    store = storemod.SecureLogStore('sqlite:///%s' % (tmp_path / 'c.sqlite'),
                                    str(tmp_path / 'state'), origin='t/log')
    k0 = keyfiles.read_k0(str(tmp_path / 'src' / 'auditor' / 'source-cinder-api@ctl.k0'))
    store.enroll_source('cinder-api@ctl', k0)
    assert store.append(entries) == [0, 1, 2]
    bundle = keyfiles.AuditorBundle.load(str(tmp_path / 'state' / 'auditor'))
    bundle.source_keys['cinder-api@ctl'] = k0
    report, problems = store.audit(bundle)
    assert report.ok and not problems, report.summary()
    store.close()


def test_ingest_endpoint_drops_what_no_sealer_made_and_appends_the_rest(tmp_path):
    transport = FlakyTransport()
    drv = drivermod.SecureLogDriver(_conf(tmp_path), [], transport, flush_interval=3600)
    drv.notify({}, {'event_type': 'x', 'payload': {}}, 'INFO', None)
    good = transport.sent[0]
    store = storemod.SecureLogStore('sqlite:///%s' % (tmp_path / 'i.sqlite'),
                                    str(tmp_path / 'state'), origin='t/log')
    store.enroll_source('cinder-api@ctl', keyfiles.read_k0(
        str(tmp_path / 'src' / 'auditor' / 'source-cinder-api@ctl.k0')))
    endpoint = ingest.IngestEndpoint(store)
    bad = [{'event_type': 'securelog.entry', 'payload': {'entry': '!!!'}},
           {'event_type': 'compute.instance.update', 'payload': {}},
           {'event_type': 'securelog.entry', 'payload': {'entry': base64.b64encode(
               b'TSE1 garbage').decode()}},
           {'event_type': 'securelog.entry', 'payload': 'not a dict'}]
    assert endpoint.info(bad + [good, good]) == 'handled'
    assert store.size() == 1 and endpoint.appended == 1
    store.close()
