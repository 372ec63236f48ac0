"""Cinder's own functional harness, made to run from a wheel install under pytest.

Real Cinder in-process (osapi_volume WSGI on 127.0.0.1, scheduler, volume services,
sqlite, fake RPC). Two workarounds, written once here (see
../shared/notes/feasibility-openstack.md): the wheel installs api-paste.ini and
resource_filters.json under ``<venv>/etc/cinder``, not where the harness looks; and Cinder's
cleanup deletes every public attribute, including the bound test method pytest still needs.
"""
import os
import sys

from cinder.tests.functional import functional_helpers

ETC = os.path.join(sys.prefix, 'etc', 'cinder')


class CinderFunctionalTest(functional_helpers._FunctionalTestBase):
    _vol_type_name = 'functional_test_type'

    def _common_cleanup(self):
        keep = {k: v for k, v in self.__dict__.items() if k.startswith('test')}
        super()._common_cleanup()
        self.__dict__.update(keep)

    def _start_api_service(self):
        from cinder import service
        self.override_config('resource_query_filters_file',
                             os.path.join(ETC, 'resource_filters.json'))
        functional_helpers.CONF.api_paste_config = os.path.join(ETC, 'api-paste.ini')
        self.osapi = service.WSGIService('osapi_volume')
        self.osapi.start()
        self.auth_url = 'http://%s:%s/v%s' % (self.osapi.host, self.osapi.port,
                                              self._osapi_version.split('.')[0])
