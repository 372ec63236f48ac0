"""The key release API behind real Keystone (keystonemiddleware), for the release tests.

Cinder is a table the test fills (``Volumes``); the attestation backend is the test's own.
"""
import contextlib
import os
import threading

from oslo_config import cfg

from tclouds_openstack.common import cinder
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack.conf import api as conf_api
from tclouds_openstack.keymgr import api
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release
from tests import hermetic
from tests.unit.keymgr import helpers


class Volumes:
    """Cinder as the gate asks it: volume ID -> cinder.Volume."""

    def __init__(self):
        self.table = {}

    def attach(self, volume_id, key_id, host):
        self.table[volume_id] = cinder.Volume(
            id=volume_id, project_id='p-alice', status='in-use', encryption_key_id=key_id,
            attachments=(cinder.Attachment('att-' + volume_id, 'attached', 'srv', host),))

    def volume(self, volume_id):
        return self.table.get(volume_id)


@contextlib.contextmanager
def serve(personas, tmp_path, backend_cls):
    """Yield ``(url, conf, volumes)``: the API on a free port, tokens checked by Keystone."""
    master = tmp_path / 'master.key'
    master.write_text(os.urandom(32).hex())
    conf_file = tmp_path / 'api.conf'
    conf_file.write_text('[api]\nauth_strategy = keystone\n%s'
                         '[tclouds_key_manager]\nlocal_store_path = %s\nmaster_key_file = %s\n'
                         % (personas.authtoken_conf(), tmp_path / 'keys.sqlite', master))
    conf = cfg.ConfigOpts()
    driver.register_opts(conf)
    conf_api.register_opts(conf)
    hermetic.parse(conf, [conf_file])
    policy.reset()
    volumes = Volumes()
    gate = release.Gate(conf, backend=backend_cls(conf), notifier=helpers.memory_notifier(conf),
                        cinder=volumes)
    server = wsgi.make_server(api.build_app(conf, gate=gate), '127.0.0.1', 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_port, conf, volumes
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        policy.reset()
