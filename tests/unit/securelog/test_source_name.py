"""Default source names: each service hosted by a generic WSGI server is its own source
(DevStack runs Nova's, Cinder's, Keystone's and the tclouds APIs all under uwsgi)."""
import socket
import sys
import types

import pytest

from tclouds_openstack.securelog import source


@pytest.fixture
def no_wsgi_server(monkeypatch):
    monkeypatch.delitem(sys.modules, 'uwsgi', raising=False)
    monkeypatch.delitem(sys.modules, 'mod_wsgi', raising=False)
    return monkeypatch


def test_program_name_outside_a_wsgi_server(no_wsgi_server):
    no_wsgi_server.setattr(sys, 'argv', ['/usr/local/bin/nova-conductor', '--config-file', 'x'])
    assert source.process_component() == 'nova-conductor'


@pytest.mark.parametrize('opt, expected', [
    ({'procname-prefix': b'nova-api', 'ini': b'/etc/nova/nova-api-uwsgi.ini'}, 'nova-api'),
    ({'procname-prefix': 'keystone'}, 'keystone'),
    ({'procname-prefix': [b'first', b'cinder-api']}, 'cinder-api'),
    ({'ini': b'/etc/tclouds/tclouds-key-release-uwsgi.ini'}, 'tclouds-key-release-uwsgi'),
])
def test_uwsgi_process_named_by_its_deployment(no_wsgi_server, opt, expected):
    no_wsgi_server.setattr(sys, 'argv', ['uwsgi'])
    no_wsgi_server.setitem(sys.modules, 'uwsgi', types.SimpleNamespace(opt=opt))
    assert source.process_component() == expected
    assert source.default_source_name(source.process_component()) == \
        '%s@%s' % (expected, socket.gethostname())


def test_uwsgi_without_a_name_is_uwsgi(no_wsgi_server):
    no_wsgi_server.setattr(sys, 'argv', ['uwsgi'])
    no_wsgi_server.setitem(sys.modules, 'uwsgi', types.SimpleNamespace(opt={}))
    assert source.process_component() == 'uwsgi'


def test_mod_wsgi_process_group(no_wsgi_server):
    no_wsgi_server.setattr(sys, 'argv', ['mod_wsgi'])
    no_wsgi_server.setitem(sys.modules, 'mod_wsgi',
                           types.SimpleNamespace(process_group='keystone-public'))
    assert source.process_component() == 'keystone-public'


def test_empty_argv(no_wsgi_server):
    no_wsgi_server.setattr(sys, 'argv', [])
    assert source.process_component() == 'python'
