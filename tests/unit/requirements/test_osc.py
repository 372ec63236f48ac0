"""``openstack trust requirement set|show|unset`` against the real requirements API.

Input errors and an unreachable API; the commands as a member and a manager with real
Keystone tokens (who may relax): tests/functional/policy/test_tenant_rules.py.
"""
import types

from keystoneauth1 import session as ks_session
from osc_lib import exceptions
import pytest

from tclouds_openstack.osc.v1 import trust
from tests.functional.cinder import requirements_server

MEMBER = {'X-Roles': 'member,reader', 'X-User-Id': 'alice', 'X-Project-Id': 'p1'}


class NoIdentity(object):
    def __getattr__(self, name):
        raise RuntimeError('no identity service in this test')


@pytest.fixture
def server(tmp_path, monkeypatch):
    srv = requirements_server.RequirementsServer(tmp_path / 'r.sqlite').start()
    monkeypatch.setenv(trust.ENDPOINT_ENV, srv.url)
    yield srv
    srv.stop()


def app(headers):
    tclouds = types.SimpleNamespace(session=ks_session.Session(additional_headers=headers),
                                    interface=None, region_name=None)
    return types.SimpleNamespace(client_manager=types.SimpleNamespace(
        tclouds=tclouds, identity=NoIdentity()))


def run(cls, headers, *argv):
    command = cls(app(headers), None)
    parsed = command.get_parser('openstack trust requirement').parse_args(list(argv))
    return command.take_action(parsed)


def test_bad_input_and_unreachable(server):
    with pytest.raises(exceptions.CommandError, match=r'requirement.jurisdictions\[0\]'):
        run(trust.SetRequirement, MEMBER, '--project', 'p1', '--jurisdiction', 'Germany')
    with pytest.raises(exceptions.CommandError, match='nothing to set'):
        run(trust.SetRequirement, MEMBER, '--project', 'p1')
    server.stop()
    with pytest.raises(exceptions.CommandError, match='unreachable'):
        run(trust.ShowRequirement, MEMBER, '--project', 'p1')
