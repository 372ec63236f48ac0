"""Cloud-of-clouds PUT/GET (DepSky-CA, n=4, f=1) via the Swift middleware vs. plain Swift.

Starts, as separate processes on loopback (free ports in 21000-21999, devices on tmpfs): four
backend Swift clusters (one reached through s3api with boto3), a front proxy with the
cloudstore middleware, and a plain single-replica cluster as the baseline. Measures 16 MiB
PUTs and GETs with python-swiftclient, alternating between the front proxy and the baseline
(so that both see the same background load), and prints the median throughput of each and
the ratio (goal >= 0.5x), and the storage overhead: bytes on all four clouds' object devices
for one object divided by its size (goal 2.0x for n=4, f=1; one replica of the baseline is
1.0x).

It also prints the CPU time each process spent per request. Every process shares this
machine's cores, so a request cannot finish faster than all the CPU it needs divided by the
number of cores: that bound, against the baseline's measured time, is the best ratio this
machine allows, whatever the middleware does.
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


def _cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as stream:
        fields = stream.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class _Target:
    """One Swift endpoint under test and the processes whose CPU its requests use."""

    def __init__(self, name, cluster, processes):
        self.name = name
        self.conn = _connection(cluster)
        self.processes = processes
        self.seconds = {'put': [], 'get': []}
        self.cpu = {'put': {}, 'get': {}}

    def timed(self, operation, fn, *args):
        pids = {item.name: item.process.pid for item in self.processes}
        before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        client = time.process_time()
        start = time.perf_counter()
        result = fn(*args)
        self.seconds[operation].append(time.perf_counter() - start)
        spent = self.cpu[operation]
        spent['client'] = spent.get('client', 0.0) + time.process_time() - client
        for name, pid in pids.items():
            spent[name] = spent.get(name, 0.0) + _cpu_seconds(pid) - before[name]
        return result

    def mbps(self, operation):
        return SIZE / statistics.median(self.seconds[operation]) / 1e6

    def cpu_ms(self, operation):
        """Mean CPU milliseconds per request, by process."""
        count = len(self.seconds[operation])
        return {name: 1000 * value / count for name, value in self.cpu[operation].items()}


def _measure(targets, data, repeats):
    for target in targets:
        target.conn.put_container('bench')
        target.conn.put_object('bench', 'warmup', data)
    for index in range(repeats):
        for target in targets:
            target.timed('put', target.conn.put_object, 'bench', 'obj%d' % index, data)
        for target in targets:
            _, body = target.timed('get', target.conn.get_object, 'bench', 'obj%d' % index)
            assert body == data, 'GET returned different bytes'


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
        base = _Target('baseline', plain, [plain])
        ours = _Target('cloudstore', front, [front] + clouds)
        _measure([base, ours], data, repeats)
        # Storage: one more object, bytes added on the clouds' devices (value objects +
        # metadata) and on the baseline's device.
        before = sum(item.stored_bytes() for item in clouds)
        plain_before = plain.stored_bytes()
        ours.conn.put_object('bench', 'storage', data)
        base.conn.put_object('bench', 'storage', data)
        time.sleep(0.5)   # overwritten versions are collected in the background
        cloud_bytes = sum(item.stored_bytes() for item in clouds) - before
        plain_bytes = plain.stored_bytes() - plain_before
    finally:
        for item in everything:
            item.stop()
        shutil.rmtree(root, ignore_errors=True)
    cores = os.cpu_count()
    print('%-44s %10s %10s' % ('16 MiB objects, median of %d' % repeats, 'PUT MB/s', 'GET MB/s'))
    print('%-44s %10.1f %10.1f' % ('baseline: one plain Swift cluster', base.mbps('put'),
                                   base.mbps('get')))
    print('%-44s %10.1f %10.1f' % ('cloudstore middleware, n=4 f=1 (1 via S3)', ours.mbps('put'),
                                   ours.mbps('get')))
    print('%-44s %9.2fx %9.2fx' % ('ratio (goal >= 0.5x)', ours.mbps('put') / base.mbps('put'),
                                   ours.mbps('get') / base.mbps('get')))
    bounds = {}
    for operation in ('put', 'get'):
        spent = ours.cpu_ms(operation)
        total = sum(spent.values())
        base_total = sum(base.cpu_ms(operation).values())
        base_ms = 1000 * statistics.median(base.seconds[operation])
        bounds[operation] = base_ms / max(total / cores, base_ms)
        print('CPU per %s: cloudstore %.0f ms (%s), baseline %.0f ms; on %d cores at best '
              '%.0f ms, ratio <= %.2fx' % (
                  operation.upper(), total,
                  ', '.join('%s %.0f' % item for item in sorted(spent.items())), base_total,
                  cores, total / cores, bounds[operation]))
    print('storage per object: clouds %.2fx of the object size (goal 2.0x), baseline %.2fx'
          % (cloud_bytes / SIZE, plain_bytes / SIZE))
    return [('put', base.mbps('put'), ours.mbps('put')),
            ('get', base.mbps('get'), ours.mbps('get')),
            ('storage', plain_bytes / SIZE, cloud_bytes / SIZE),
            ('put_bound', 1.0, bounds['put']), ('get_bound', 1.0, bounds['get'])]
