"""Cloud-of-clouds PUT/GET (DepSky-CA, n=4, f=1) via the Swift middleware vs. plain Swift.

Starts, as separate processes on loopback (free ports in 21000-21999, devices on tmpfs): four
backend Swift clusters (one reached through s3api with boto3), a front proxy with the
cloudstore middleware, and a plain single-replica cluster as the baseline. Measures the
median throughput of 16 MiB PUTs and GETs with python-swiftclient against the front proxy
and the baseline in the same run, prints both and the ratio (goal >= 0.5x), and the
storage overhead: bytes on all four clouds' object devices for one object divided by its
size (goal 2.0x for n=4, f=1; one replica of the baseline is 1.0x).
"""
import os
import pathlib
import shutil
import statistics
import time

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives import serialization
import swiftclient

from tests.functional.cloudstore import cluster as cluster_mod

SIZE = 16 * 1024 * 1024
FIRST_SLOT = 10


def _connection(cluster):
    return swiftclient.Connection(cluster.auth_url, cluster_mod.USER, cluster_mod.KEY,
                                  retries=0, timeout=120)


def _measure(conn, container, data, repeats):
    conn.put_container(container)
    conn.put_object(container, 'warmup', data)
    puts = []
    gets = []
    for index in range(repeats):
        start = time.perf_counter()
        conn.put_object(container, 'obj%d' % index, data)
        puts.append(time.perf_counter() - start)
        start = time.perf_counter()
        _, body = conn.get_object(container, 'obj%d' % index)
        gets.append(time.perf_counter() - start)
        assert body == data, 'GET returned different bytes'
    mbps = lambda seconds: SIZE / statistics.median(seconds) / 1e6  # noqa: E731
    return mbps(puts), mbps(gets)


def run(quick=False):
    repeats = 2 if quick else 5
    first_slot = cluster_mod.free_slots(6, FIRST_SLOT)
    root = cluster_mod.make_root('tclouds-cloudstore-bench')
    key = ed25519.Ed25519PrivateKey.generate()
    key_file = pathlib.Path(root) / 'writer.pem'
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    clouds = [cluster_mod.Cluster('cloud%d' % index, first_slot + index, root,
                                  s3api=(index == 3), backend_only=True)
              for index in range(4)]
    front = cluster_mod.Cluster('front', first_slot + 4, root, cloudstore=(
        cluster_mod.cloudstore_section(clouds, key_file, timeout=30)))
    plain = cluster_mod.Cluster('plain', first_slot + 5, root)
    everything = clouds + [front, plain]
    try:
        for item in everything:
            item.start()
        data = os.urandom(SIZE)
        base_put, base_get = _measure(_connection(plain), 'bench', data, repeats)
        cs_put, cs_get = _measure(_connection(front), 'bench', data, repeats)
        # Storage: one more object, bytes added on the clouds' devices (value objects +
        # metadata) and on the baseline's device.
        before = sum(item.stored_bytes() for item in clouds)
        plain_before = plain.stored_bytes()
        _connection(front).put_object('bench', 'storage', data)
        _connection(plain).put_object('bench', 'storage', data)
        time.sleep(0.5)   # overwritten versions are collected in the background
        cloud_bytes = sum(item.stored_bytes() for item in clouds) - before
        plain_bytes = plain.stored_bytes() - plain_before
    finally:
        for item in everything:
            item.stop()
        shutil.rmtree(root, ignore_errors=True)
    print('%-44s %10s %10s' % ('16 MiB objects, median of %d' % repeats, 'PUT MB/s', 'GET MB/s'))
    print('%-44s %10.1f %10.1f' % ('baseline: one plain Swift cluster', base_put, base_get))
    print('%-44s %10.1f %10.1f' % ('cloudstore middleware, n=4 f=1 (1 via S3)', cs_put, cs_get))
    print('%-44s %9.2fx %9.2fx' % ('ratio (goal >= 0.5x)', cs_put / base_put, cs_get / base_get))
    print('storage per object: clouds %.2fx of the object size (goal 2.0x), baseline %.2fx'
          % (cloud_bytes / SIZE, plain_bytes / SIZE))
    return [('put', base_put, cs_put), ('get', base_get, cs_get),
            ('storage', plain_bytes / SIZE, cloud_bytes / SIZE)]
