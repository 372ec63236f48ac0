"""Fixtures: four independent Swift clusters (one behind s3api) and a front proxy.

Session-scoped: starting the five processes takes about two seconds. Tests that stop or
corrupt a cluster restore it before they finish (``clouds`` re-starts any cluster that
is down at teardown).
"""
import concurrent.futures
import os
import pathlib
import shutil

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives import serialization
import pytest
import swiftclient

from tclouds_openstack.cloudstore import protocol
from tests.functional.cloudstore import cluster as cluster_mod

N_CLOUDS = 4
# First port slot (10 ports each from 21000): the first free run of five, or forced.
if os.environ.get('TCLOUDS_CLOUDSTORE_FIRST_SLOT'):
    FIRST_SLOT = int(os.environ['TCLOUDS_CLOUDSTORE_FIRST_SLOT'])
else:
    FIRST_SLOT = cluster_mod.free_slots(N_CLOUDS + 1)


@pytest.fixture(scope='session')
def cloud_root():
    root = cluster_mod.make_root('tclouds-cloudstore-ftest')
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope='session')
def writer_key_file(cloud_root):
    key = ed25519.Ed25519PrivateKey.generate()
    path = pathlib.Path(cloud_root) / 'writer.pem'
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


@pytest.fixture(scope='session')
def backend_clusters(cloud_root):
    clusters = [cluster_mod.Cluster('cloud%d' % index, FIRST_SLOT + index, cloud_root,
                                    s3api=(index == N_CLOUDS - 1), backend_only=True)
                for index in range(N_CLOUDS)]
    try:
        for item in clusters:
            item.start()
        yield clusters
    finally:
        for item in clusters:
            item.stop()


@pytest.fixture(scope='session')
def front_proxy(cloud_root, backend_clusters, writer_key_file):
    fault_log = pathlib.Path(cloud_root) / 'faults.jsonl'
    section = cluster_mod.cloudstore_section(backend_clusters, writer_key_file,
                                             fault_log=fault_log)
    front = cluster_mod.Cluster('front', FIRST_SLOT + N_CLOUDS, cloud_root, cloudstore=section,
                                log_level='INFO')
    front.fault_log = fault_log
    try:
        yield front.start()
    finally:
        front.stop()


@pytest.fixture
def clouds(backend_clusters):
    """The backend clusters; any a test left stopped or paused is brought back."""
    yield backend_clusters
    for item in backend_clusters:
        if item.process is None:
            item.start()
        else:
            item.resume()


@pytest.fixture
def swift(front_proxy):
    conn = swiftclient.Connection(front_proxy.auth_url, cluster_mod.USER, cluster_mod.KEY,
                                  retries=0, starting_backoff=0.01)
    yield conn
    conn.close()


@pytest.fixture
def container(swift):
    name = 'c%s' % os.urandom(4).hex()
    swift.put_container(name)
    return name


@pytest.fixture
def reader(clouds, writer_key_file):
    """The protocol in this process over the same clouds (to inspect what they hold)."""
    key = serialization.load_pem_private_key(writer_key_file.read_bytes(), None)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        yield protocol.DepSkyCA([item.backend() for item in clouds], 1, key.public_key(),
                                executor=pool, timeout=5)
