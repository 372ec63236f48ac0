"""The key release API behind real Keystone (keystonemiddleware), for the release tests.

Cinder is a table the test fills (``Volumes``); the attestation backend is the test's own.
``compute_driver`` is the castellan driver as nova-compute runs it, with a persona's
Keystone credential in its configuration.
"""
import contextlib
import os

from oslo_config import cfg

from tclouds_openstack.common import cinder
from tclouds_openstack.common import policy
from tclouds_openstack.keymgr import api
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release
from tests.functional import wsgi_thread
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
    conf = personas.api_conf(tmp_path, '[tclouds_key_manager]\nlocal_store_path = %s\n'
                                       'master_key_file = %s\n'
                             % (tmp_path / 'keys.sqlite', master))
    policy.reset()
    volumes = Volumes()
    gate = release.Gate(conf, backend=backend_cls(conf), notifier=helpers.memory_notifier(conf),
                        cinder=volumes)
    try:
        with wsgi_thread.serving(api.build_app(conf, gate=gate)) as url:
            yield url, conf, volumes
    finally:
        policy.reset()


def compute_driver(tmp_path, personas, persona, api_url):
    """The castellan driver of nova-compute (role compute) authenticating as ``persona``."""
    conf_file = tmp_path / ('compute-%s.conf' % persona.replace(':', '-'))
    conf_file.write_text('[tclouds_key_manager]\nrole = compute\n'
                         'release_endpoint_override = %s\n%s'
                         % (api_url, personas.auth_options(persona)))
    conf = cfg.ConfigOpts()
    driver.register_opts(conf)
    return driver.TcloudsKeyManager(hermetic.parse(conf, [conf_file]))
