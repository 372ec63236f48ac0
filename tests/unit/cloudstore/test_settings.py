"""Start-up validation of the middleware options and the backend loader."""
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives import serialization
import pytest

from tclouds_openstack.cloudstore import backends
from tclouds_openstack.cloudstore.backends import s3
from tclouds_openstack.cloudstore.backends import swift
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import settings as settings_mod


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / 'writer.pem'
    path.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return path


def _conf(key_file, **changes):
    conf = {'clouds': 'a, b, c, d', 'writer_key_file': str(key_file),
            'project_requirements': 'false'}
    for name in 'abc':
        conf.update({'cloud_%s_type' % name: 'swift', 'cloud_%s_auth_url' % name: 'http://x',
                     'cloud_%s_user' % name: 'u', 'cloud_%s_key' % name: 'k'})
    conf.update({'cloud_d_type': 's3', 'cloud_d_endpoint_url': 'http://y',
                 'cloud_d_access_key': 'a', 'cloud_d_secret_key': 's'})
    conf.update(changes)
    return conf


def test_valid_configuration_builds_both_backend_types(key_file):
    settings = settings_mod.Settings(_conf(key_file))
    clouds = settings.build_clouds()
    assert [type(cloud) for cloud in clouds] == [swift.SwiftBackend] * 3 + [s3.S3Backend]
    assert settings.f == 1 and settings.policies == ['cloudofclouds']


@pytest.mark.parametrize('changes,message', [
    ({'clouds': 'a, b, c'}, 'f=1 needs at least 4'),
    ({'f': 'one'}, 'must be numbers'),
    ({'timeout': '0'}, 'timeout > 0'),
    ({'max_object_size': '1G'}, 'must be numbers'),
    ({'max_object_size': '0'}, 'max_object_size >= 1'),
    ({'writer_key_file': '/nonexistent/key.pem'}, 'cannot read the writer key'),
    ({'window_segments': '0'}, 'window_segments >= 1'),
    ({'clouds': 'a, b, c, d/e'}, "cloud name 'd/e'"),
    ({'clouds': 'a, b, c, a'}, 'names a cloud twice'),
    ({'cloud_a_country': 'EU'}, 'cloud_a_country: a host is labelled with exactly one'),
    ({'cloud_a_country': 'XX'}, 'cloud_a_country'),
    ({'cloud_a_country': 'DE,FR'}, 'cloud_a_country'),
    ({'project_requirements': 'maybe'}, 'project_requirements must be true or false'),
    ({'project_requirements': 'true'}, 'set tclouds_config_file'),
    ({'reseller_prefix': ' , '}, 'reseller_prefix must name'),
    ({'request_deadline': '0'}, 'request_deadline > 0'),
    ({'request_deadline': 'nan'}, 'request_deadline > 0'),
    ({'request_deadline': '5m'}, 'must be numbers'),
    ({'cloud_a_deadline': '5'}, 'cloud_a_deadline: the deadline is one option for every '
                                'cloud, request_deadline'),
])
def test_bad_options_stop_the_proxy_with_a_reason(key_file, changes, message):
    with pytest.raises(ValueError, match=message):
        settings_mod.Settings(_conf(key_file, **changes))


def test_one_request_deadline_for_every_cloud(key_file):
    """Issue 12 point 9: every cloud's requests get the one ``request_deadline``."""
    clouds = settings_mod.Settings(_conf(key_file, request_deadline='42.5')).build_clouds()
    assert [cloud.deadline for cloud in clouds] == [42.5] * 4
    default = settings_mod.Settings(_conf(key_file)).build_clouds()
    assert {cloud.deadline for cloud in default} == {300.0}


def test_cloud_countries(key_file):
    settings = settings_mod.Settings(_conf(key_file, cloud_a_country='de', cloud_b_country='FR',
                                           cloud_c_country=' nl '))
    assert settings.placement.countries == {'a': 'DE', 'b': 'FR', 'c': 'NL', 'd': None}
    # The country is the gateway's knowledge, not a driver option.
    assert all('country' not in options for _, options in settings.cloud_options)
    assert settings_mod.Settings(_conf(key_file, project_requirements='true',
                                       tclouds_config_file='/x.conf')).project_requirements


def test_missing_key_option_names_it(key_file):
    conf = _conf(key_file)
    del conf['writer_key_file']
    with pytest.raises(ValueError, match='writer_key_file'):
        settings_mod.Settings(conf)


def test_not_an_ed25519_key(tmp_path, key_file):
    bad = tmp_path / 'bad.pem'
    bad.write_bytes(b'-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')
    with pytest.raises(ValueError, match='writer key'):
        settings_mod.Settings(_conf(key_file, writer_key_file=str(bad)))


@pytest.mark.parametrize('options,message', [
    ({'type': 'ftp'}, "type 'ftp' is not one of swift, s3"),
    ({'type': 'swift', 'auth_url': 'http://x', 'user': 'u'}, "option 'key' is required"),
    ({'type': 's3', 'endpoint_url': 'http://x', 'access_key': 'a', 'secret_key': 's',
      'timeout': '-1'}, 'not a positive number'),
])
def test_backend_loader_errors(options, message):
    with pytest.raises(errors.CloudStoreError, match=message):
        backends.load('cloudX', options)


def test_unreachable_cloud_raises_backend_error():
    cloud = backends.load('nowhere', {'type': 'swift', 'auth_url': 'http://127.0.0.1:9/auth',
                                      'user': 'u', 'key': 'k', 'timeout': '1'})
    with pytest.raises(errors.BackendError, match='cloud nowhere: get failed'):
        cloud.get('x', 100)
    s3cloud = backends.load('nowhere-s3', {'type': 's3', 'endpoint_url': 'http://127.0.0.1:9',
                                           'access_key': 'a', 'secret_key': 's',
                                           'timeout': '1'})
    with pytest.raises(errors.BackendError, match='cloud nowhere-s3: put failed'):
        s3cloud.put('x', b'y')
