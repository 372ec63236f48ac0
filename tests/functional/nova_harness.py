"""What every test running real Nova in-process needs on top of Nova's own test base.

Mix :class:`NovaHarness` in before Nova's test class::

    class MyTest(nova_harness.NovaHarness, integrated_helpers.ProviderUsageBaseTestCase):

* No machine configuration: Nova's fixtures and the oslo.middleware filters of its paste
  pipeline call oslo.config without ``default_config_dirs`` (they would read
  /etc/nova/nova.conf.d, and nova.conf itself), nova-compute reads every YAML file in
  /etc/nova/provider_config/, and the API paste file is the wheel's, not /etc/nova's.
* No wall-clock limits: Nova's helpers poll a server, a migration or an instance action
  10 to 40 times, 0.5 s apart, then fail; on a loaded machine a boot takes longer. Here they
  wait as long as the cloud is working (tests/watchdog.py).
"""
import os
import sys

import fixtures
from nova.tests.functional.api import client as api_client

from tests import hermetic
from tests import watchdog

API_PASTE = os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')


class NovaHarness:

    def setUp(self):
        self.useFixture(hermetic.NoDefaultConfigDirs())
        self.flags(api_paste_config=API_PASTE, group='wsgi')
        self.flags(provider_config_location=self.useFixture(fixtures.TempDir()).path,
                   group='compute')
        super().setUp()

    def _clear_attrs(self):
        pass    # nova's cleanup deletes instance attributes pytest still needs

    def _wait_for_server_parameter(self, server, expected_params, max_retries=None,
                                   api=None, wait_for_fault_key=True):
        api = api or getattr(self, 'admin_api', self.api)
        # As Nova (34): a server in ERROR is awaited until its fault is recorded too.
        wait_for_fault = wait_for_fault_key and expected_params.get('status') == 'ERROR'
        last = {}

        def reached():
            last['server'] = api.get_server(server['id'])
            return all(last['server'][k] == v for k, v in expected_params.items()) and \
                (not wait_for_fault or 'fault' in last['server'])

        try:
            watchdog.wait_until(reached, 'server %s to reach %s' % (server['id'],
                                                                    expected_params))
        except AssertionError as exc:
            self.fail('%s; server=%s' % (exc, last.get('server')))
        return last['server']

    def _wait_for_state_change(self, server, expected_status, max_retries=None,
                               wait_for_fault_key=True):
        return self._wait_for_server_parameter(server, {'status': expected_status},
                                               wait_for_fault_key=wait_for_fault_key)

    def _wait_until_deleted(self, server):
        initially_in_error = server.get('status') == 'ERROR'

        def gone():
            try:
                current = self.api.get_server(server['id'])
            except api_client.OpenStackApiNotFoundException:
                return True
            if not initially_in_error and current['status'] == 'ERROR':
                self.fail('Server went to error state instead of disappearing.')
            return False

        watchdog.wait_until(gone, 'server %s to be deleted' % server['id'])

    def _wait_for_migration_status(self, server, expected_statuses):
        api = getattr(self, 'admin_api', self.api)
        statuses = [status.lower() for status in expected_statuses]

        def found():
            for migration in api.api_get('/os-migrations').body['migrations']:
                if migration['instance_uuid'] == server['id'] and \
                        migration['status'].lower() in statuses:
                    return migration
            return None

        return watchdog.wait_until(found, 'a migration of %s with status %s'
                                   % (server['id'], expected_statuses))

    def _wait_for_instance_action_event(self, server, action_name, event_name, event_result):
        api = getattr(self, 'admin_api', self.api)

        def found():
            for action in api.get_instance_actions(server['id']):
                if action['action'] != action_name:
                    continue
                events = api.get_instance_action_details(
                    server['id'], action['request_id'])['events']
                for event in events:
                    if event['event'] == event_name and event['result'] is not None and \
                            event['result'].lower() == event_result.lower():
                        return event
            return None

        return watchdog.wait_until(found, 'instance action event %s %s of %s (%s)' % (
            action_name, event_name, server['id'], event_result))
