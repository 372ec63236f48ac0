"""The plugin class Tempest loads through the ``tempest.test_plugins`` entry point."""
import os

from tempest import config
from tempest.test_discover import plugins

from tclouds_openstack.tests.tempest import config as tclouds_config


class TCloudsTempestPlugin(plugins.TempestPlugin):

    def load_tests(self):
        # (the test directory, the directory tclouds_openstack is imported from)
        here = os.path.dirname(os.path.abspath(__file__))
        return here, os.path.abspath(os.path.join(here, '..', '..', '..'))

    def register_opts(self, conf):
        config.register_opt_group(conf, config.service_available_group,
                                  tclouds_config.service_available_opts)
        for group, opts in tclouds_config.GROUPS:
            config.register_opt_group(conf, group, opts)

    def get_opt_lists(self):
        return [(config.service_available_group.name, tclouds_config.service_available_opts)] \
            + [(group.name, opts) for group, opts in tclouds_config.GROUPS]

    def get_service_clients(self):
        clients = []
        for name, group, module, names in (
                ('attestation_v1', 'attestation',
                 'tclouds_openstack.tests.tempest.services.attestation',
                 ['AttestationClient']),
                ('secure_log_v1', 'secure_log',
                 'tclouds_openstack.tests.tempest.services.securelog',
                 ['SecureLogClient']),
                ('key_release_v1', 'key_release',
                 'tclouds_openstack.tests.tempest.services.key_release',
                 ['KeyReleaseClient'])):
            params = config.service_client_config(group)
            params.update({'name': name, 'service_version': group,
                           'module_path': module, 'client_names': names})
            clients.append(params)
        return clients
