"""Cinder's own functional harness, made to run from a wheel install under pytest.

Real Cinder in-process (osapi_volume WSGI on 127.0.0.1, scheduler, volume services,
sqlite, fake RPC). Two workarounds, written once here (see
../shared/notes/feasibility-openstack.md): the wheel installs api-paste.ini and
resource_filters.json under ``<venv>/etc/cinder``, not where the harness looks; and Cinder's
cleanup deletes every public attribute, including the bound test method pytest still needs.
No machine configuration (Cinder's fixtures and paste pipeline call oslo.config without
``default_config_dirs``: /etc/cinder/cinder.conf.d, cinder.conf) and no fixed waits
(Cinder polls a volume 5 times, 1 s apart): tests/hermetic.py, tests/watchdog.py.
"""
import os
import sys

from cinder.tests.functional.api import client
from cinder.tests.functional import functional_helpers

from tests import hermetic
from tests import watchdog

ETC = os.path.join(sys.prefix, 'etc', 'cinder')


class CinderFunctionalTest(functional_helpers._FunctionalTestBase):
    _vol_type_name = 'functional_test_type'

    def setUp(self):
        self.useFixture(hermetic.NoDefaultConfigDirs())
        super().setUp()

    def _common_cleanup(self):
        keep = {k: v for k, v in self.__dict__.items() if k.startswith('test')}
        super()._common_cleanup()
        self.__dict__.update(keep)

    def _poll_resource_while(self, res_id, continue_states, res_type=functional_helpers.VOLUME,
                             expected_end_status=None, max_retries=None, status_field='status'):
        get = {functional_helpers.VOLUME: self.api.get_volume,
               functional_helpers.SNAPSHOT: self.api.get_snapshot,
               functional_helpers.GROUP: self.api.get_group,
               functional_helpers.GROUP_SNAPSHOT: self.api.get_group_snapshot}[res_type]
        found = {}

        def settled():
            try:
                found['res'] = get(res_id)
            except client.OpenStackApiException404:
                found['res'] = None
                return True
            except client.OpenStackApiException:
                return False    # as Cinder's own helper: it works if continued
            return found['res'][status_field] not in continue_states

        watchdog.wait_until(settled, '%s %s to leave %s' % (res_type, res_id, continue_states),
                            interval=0.5)
        res = found['res']
        if res is not None:
            self.assertEqual(res_id, res['id'])
            if expected_end_status:
                self.assertEqual(expected_end_status, res[status_field])
        return res

    def _start_api_service(self):
        from cinder import service
        self.override_config('resource_query_filters_file',
                             os.path.join(ETC, 'resource_filters.json'))
        functional_helpers.CONF.api_paste_config = os.path.join(ETC, 'api-paste.ini')
        self.osapi = service.WSGIService('osapi_volume')
        self.osapi.start()
        self.auth_url = 'http://%s:%s/v%s' % (self.osapi.host, self.osapi.port,
                                              self._osapi_version.split('.')[0])
