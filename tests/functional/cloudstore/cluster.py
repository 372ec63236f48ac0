"""Independent Swift clusters on loopback, one OS process each, for cloud-of-clouds tests.

Swift keeps rings, storage policies and hash settings process-wide, so each cluster
(proxy + account + container + object server, one device on tmpfs) runs in its own child
process: ``python -m tests.functional.cloudstore.cluster <dir>``, configured by
``<dir>/cluster.json``. Ports are fixed (21000-21999, this area's range) because rings
store them and a restarted cluster must come back on the same ones.

:class:`Cluster` is the parent-side handle: start, stop (SIGKILL), pause (SIGSTOP),
resume, restart. Also used by ``benchmarks/bench_cloudstore.py``.
"""
import fcntl
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from tests import watchdog

REPO = pathlib.Path(__file__).resolve().parents[3]
PORT_BASE = 21000
PORTS_PER_SLOT = 10
USER = 'test:tester'
KEY = 'testing'
TMPFS = pathlib.Path(os.environ.get('TCLOUDS_CLOUDSTORE_TMPFS', '/dev/shm'))

# A front proxy has Swift's usual middlewares around cloudstore; a backend cloud only what
# the cloudstore backends use (fewer middlewares: less CPU per fragment on a small box).
_FRONT_PIPELINE = ('catch_errors gatekeeper healthcheck proxy-logging cache listing_formats '
                   'bulk %(auth)s copy slo dlo versioned_writes symlink %(cloudstore)s '
                   'proxy-logging proxy-server')
_KEYSTONE_AUTH = 'authtoken keystoneauth'
_BACKEND_PIPELINE = ('catch_errors gatekeeper healthcheck proxy-logging cache listing_formats '
                     '%(s3api)s tempauth %(slo)s proxy-logging proxy-server')

_PROXY_CONF = """[DEFAULT]
swift_dir = %(dir)s
log_level = %(log_level)s
log_name = %(name)s

[pipeline:main]
pipeline = %(pipeline)s

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
node_timeout = 10
conn_timeout = 2

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
paste.filter_factory = tests.functional.cloudstore.cluster:cache_filter_factory
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
[filter:symlink]
use = egg:swift#symlink
[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member
%(extra)s
"""

_SWIFT_CONF = """[swift-hash]
swift_hash_path_prefix = %(name)s-prefix
swift_hash_path_suffix = %(name)s-suffix

[storage-policy:0]
name = %(policy)s
default = yes
%(policy_options)s"""

#: Swift's own erasure coding, as an operator would configure it (2 data + 2 parity
#: fragments by liberasurecode's ISA-L backend, 1 MiB segments): every fragment on its own
#: device of the one object server.
_EC_POLICY = """policy_type = erasure_coding
ec_type = isa_l_rs_vand
ec_num_data_fragments = %(k)d
ec_num_parity_fragments = %(m)d
ec_object_segment_size = 1048576
"""


def slot_port(slot):
    return PORT_BASE + PORTS_PER_SLOT * slot


# Slots this process holds: an exclusive lock on a file per slot, kept until the process
# ends. Probing ports alone races: two suites running at once (CI runs the tested set and
# upper-constraints side by side) found the same slots free before either bound them, and
# Swift listens with SO_REUSEPORT, so both bound them and each answered the other's
# requests (401 for the other Keystone's tokens).
_HELD_SLOTS = {}


def _hold_slot(slot):
    """True when this process holds ``slot`` (taken now or before), False if another does."""
    if slot in _HELD_SLOTS:
        return True
    path = os.path.join(tempfile.gettempdir(), 'tclouds-swift-slot-%d.lock' % slot)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _HELD_SLOTS[slot] = fd
    return True


def _release_slot(slot):
    fd = _HELD_SLOTS.pop(slot, None)
    if fd is not None:
        os.close(fd)        # closing the only descriptor releases the lock


def free_slots(count, first=0):
    """First run of ``count`` consecutive slots whose ports are free and no other process holds.

    This area's range holds 100 slots; another test process or checkout running the same
    tests at the same time holds some of them (see ``_hold_slot``).
    """
    for base in range(first, 100 - count + 1, count):
        slots = range(base, base + count)
        taken = [slot for slot in slots if slot not in _HELD_SLOTS]
        if all(_hold_slot(slot) for slot in slots) and all(
                _port_free(slot_port(slot) + offset) for slot in slots for offset in range(4)):
            return base
        for slot in taken:
            _release_slot(slot)
    raise RuntimeError('no %d free port slots left in %d-%d' % (
        count, PORT_BASE, PORT_BASE + 100 * PORTS_PER_SLOT - 1))


def cloudstore_section(clouds, writer_key_file, f=1, fault_log=None, timeout=5,
                       countries=None, tclouds_config_file=None):
    """``[filter:cloudstore]`` for a front proxy over ``clouds`` (a list of Cluster).

    ``countries`` maps cloud names to their country; without ``tclouds_config_file``
    (which reads projects' trust requirements) every project's objects go to all clouds.
    """
    lines = ['[filter:cloudstore]', 'use = egg:tclouds-openstack#cloudstore',
             'policies = cloudofclouds', 'f = %d' % f, 'timeout = %s' % timeout,
             'writer_key_file = %s' % writer_key_file,
             'clouds = %s' % ', '.join(cluster.name for cluster in clouds)]
    if tclouds_config_file:
        lines.append('tclouds_config_file = %s' % tclouds_config_file)
    else:
        lines.append('project_requirements = false')
    if fault_log:
        lines.append('fault_log = %s' % fault_log)
    for cluster in clouds:
        for key, value in sorted(cluster.backend_options().items()):
            lines.append('cloud_%s_%s = %s' % (cluster.name, key, value))
        if (countries or {}).get(cluster.name):
            lines.append('cloud_%s_country = %s' % (cluster.name, countries[cluster.name]))
    return '\n'.join(lines) + '\n'


class Cluster:
    """One Swift cluster in its own process; devices and config under a tmpfs dir."""

    def __init__(self, name, slot, root, s3api=False, cloudstore=None, log_level='ERROR',
                 backend_only=False, keystone_authtoken=None, ec=None, split=False,
                 code=None):
        """A cluster; with ``keystone_authtoken`` its proxy trusts a real Keystone.

        ``keystone_authtoken`` holds the ``[keystone_authtoken]`` options of a Keystone
        (tests/functional/personas.py): tenants then authenticate with Keystone tokens
        (authtoken + keystoneauth) instead of tempauth. ``code``: another checkout whose
        ``tclouds_openstack`` the cluster's processes import (a benchmark's baseline
        gateway); the cluster runner itself stays this checkout's.
        """
        self.name = name
        self.code = pathlib.Path(code) if code else None
        self.keystone_authtoken = keystone_authtoken
        #: ``(k, m)``: the default policy is Swift's erasure coding (k data + m parity).
        self.ec = ec
        #: The proxy in one process (``process``), the storage servers in a child of it.
        self.split = split
        self.devices = ['sda%d' % (index + 1) for index in range(sum(ec) if ec else 1)]
        self.backend_only = backend_only
        self.port = slot_port(slot)
        self.dir = pathlib.Path(root) / name
        self.s3api = s3api
        self.cloudstore = cloudstore
        self.log_level = log_level
        self.process = None
        self.log_file = self.dir / 'server.log'

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.port

    @property
    def auth_url(self):
        return self.url + '/auth/v1.0'

    def backend_options(self):
        """This cluster as a cloudstore backend: S3 through s3api, or Swift."""
        if self.s3api:
            return {'type': 's3', 'endpoint_url': self.url, 'access_key': USER,
                    'secret_key': KEY, 'bucket': 'cloudstore'}
        return {'type': 'swift', 'auth_url': self.auth_url, 'user': USER, 'key': KEY,
                'container': 'cloudstore'}

    def backend(self):
        from tclouds_openstack.cloudstore import backends
        return backends.load(self.name, self.backend_options())

    def write_config(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        for device in self.devices:
            (self.dir / 'devs' / device / 'tmp').mkdir(parents=True, exist_ok=True)
        policy = 'cloudofclouds' if self.cloudstore else 'ec' if self.ec else 'plain'
        (self.dir / 'swift.conf').write_text(_SWIFT_CONF % {
            'name': self.name, 'policy': policy, 'policy_options': _EC_POLICY % {
                'k': self.ec[0], 'm': self.ec[1]} if self.ec else ''})
        template = _BACKEND_PIPELINE if self.backend_only else _FRONT_PIPELINE
        pipeline = template % {'s3api': 's3api' if self.s3api else '',
                               # s3api completes multipart uploads as SLO manifests.
                               'slo': 'slo' if self.s3api else '',
                               'cloudstore': 'cloudstore' if self.cloudstore else '',
                               'auth': _KEYSTONE_AUTH if self.keystone_authtoken
                               else 'tempauth'}
        extra = self.cloudstore or ''
        if self.keystone_authtoken:
            extra += '\n[filter:authtoken]\n%s\n' % '\n'.join(
                ['paste.filter_factory = keystonemiddleware.auth_token:filter_factory',
                 'delay_auth_decision = false']
                + ['%s = %s' % item for item in sorted(self.keystone_authtoken.items())])
        (self.dir / 'proxy-server.conf').write_text(_PROXY_CONF % {
            'dir': self.dir, 'pipeline': ' '.join(pipeline.split()), 'name': self.name,
            'extra': extra, 'log_level': self.log_level})
        (self.dir / 'cluster.json').write_text(json.dumps({
            'name': self.name, 'dir': str(self.dir), 'port': self.port,
            'devices': self.devices, 'split': self.split}))

    def start(self, timeout=30):
        if not (self.dir / 'cluster.json').exists():
            self.write_config()
        for port in range(self.port, self.port + 4):
            if not _port_free(port):
                raise RuntimeError('cluster %s: port %d is busy (a cluster left over from '
                                   'another run?)' % (self.name, port))
        top = self._import_root()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(top)] + [
            p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
        with open(self.log_file, 'ab') as log:
            self.process = subprocess.Popen(
                [sys.executable, '-m', 'tests.functional.cloudstore.cluster', str(self.dir)],
                cwd=str(top), env=env, stdout=log, stderr=subprocess.STDOUT)

        def healthy():
            try:
                with urllib.request.urlopen(self.url + '/healthcheck', timeout=60) as resp:
                    return resp.status == 200
            except OSError:
                return False

        # No time limit (``timeout`` is ignored): it starts as long as it works on it.
        try:
            watchdog.wait_until(healthy, 'cluster %s to answer on port %d'
                                % (self.name, self.port), proc=self.process, interval=0.05)
        except AssertionError as exc:
            self.stop()
            raise RuntimeError('%s: %s' % (exc, self.log_file.read_text()[-3000:]))
        return self

    def _import_root(self):
        """The directory first on the processes' path (and their working directory).

        This checkout, or for ``code`` one holding that checkout's ``tclouds_openstack``
        beside this one's ``tests``.
        """
        if self.code is None:
            return REPO
        top = self.dir / 'code'
        top.mkdir(parents=True, exist_ok=True)
        for name, target in (('tclouds_openstack', self.code / 'tclouds_openstack'),
                             ('tests', REPO / 'tests')):
            link = top / name
            if not link.is_symlink():
                link.symlink_to(target, target_is_directory=True)
        return top

    def stop(self):
        """SIGKILL: like a provider vanishing; new requests fail at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def pause(self):
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def restart(self):
        self.stop()
        return self.start()

    def storage_pid(self):
        """The pid of the storage servers' process of a ``split`` cluster."""
        return int((self.dir / 'storage.pid').read_text())

    def stored_bytes(self):
        """Every file byte on this cluster's object device (what the provider holds)."""
        return sum(path.stat().st_size for path in self.stored_files())

    def stored_files(self):
        return sorted(path for device in self.devices
                      for path in (self.dir / 'devs' / device).rglob('*.data'))


def make_root(prefix):
    root = pathlib.Path(TMPFS) / ('%s-%d' % (prefix, os.getpid()))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


# -- child process ---------------------------------------------------------------------------

class _Cache:
    """In-process stand-in for memcache (tempauth needs ``swift.cache``)."""

    def __init__(self):
        self.store = {}

    def _live(self, key):
        value, expires = self.store.get(key, (None, 0))
        if expires and expires < time.time():
            self.store.pop(key, None)
            return None
        return value

    def get(self, key, raise_on_error=False):
        return self._live(key)

    def set(self, key, value, serialize=True, time=0, min_compress_len=0,
            raise_on_error=False):
        import time as time_module
        self.store[key] = (value, time_module.time() + time if time else 0)
        return True

    def incr(self, key, delta=1, time=0):
        value = int(self._live(key) or 0) + delta
        self.set(key, value, time=time)
        return value

    def decr(self, key, delta=1, time=0):
        return self.incr(key, -delta, time)

    def delete(self, key, server_key=None):
        self.store.pop(key, None)

    def get_multi(self, keys, server_key):
        return [self._live(key) for key in keys]

    def set_multi(self, mapping, server_key, serialize=True, time=0, min_compress_len=0):
        for key, value in mapping.items():
            self.set(key, value, time=time)


def cache_filter_factory(global_conf, **local_conf):
    cache = _Cache()

    def factory(app):
        def middleware(env, start_response):
            env['swift.cache'] = cache
            return app(env, start_response)
        return middleware
    return factory


def _storage_process(directory):
    """Start this cluster's account, container and object servers in a child process.

    The child dies with this process (PR_SET_PDEATHSIG), so a SIGKILLed cluster leaves
    nothing behind; its pid is in ``storage.pid`` (the benchmark counts its CPU apart).
    """
    import ctypes
    import signal as signal_module

    def die_with_parent():
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal_module.SIGKILL)

    child = subprocess.Popen([sys.executable, '-m', 'tests.functional.cloudstore.cluster',
                              directory, 'storage'], preexec_fn=die_with_parent)
    (pathlib.Path(directory) / 'storage.pid').write_text(str(child.pid))
    return child


def _serve(directory, role='all'):
    """Serve the cluster in ``directory``: ``all`` its servers, or one ``role``.

    ``proxy`` or ``storage`` (account, container, object servers): a cluster with
    ``split`` runs the two apart, as a deployment does, so that a proxy's own CPU and
    memory can be measured.
    """
    from tests import hermetic
    utils = hermetic.import_swift()     # not /etc/swift/swift.conf: swift_dir is set below
    utils.monkey_patch()
    # Server logs go to this process's stderr (the cluster's server.log), not syslog.
    syslog_get_logger = utils.get_logger

    def console_get_logger(conf, *args, **kwargs):
        kwargs['log_to_console'] = True
        return syslog_get_logger(conf, *args, **kwargs)
    utils.get_logger = console_get_logger
    import eventlet
    import eventlet.wsgi
    from swift.account import server as account_server
    from swift.common import constraints
    from swift.common import ring
    from swift.common import storage_policy
    from swift.common import wsgi
    from swift.container import server as container_server
    from swift.obj import server as object_server

    config = json.loads((pathlib.Path(directory) / 'cluster.json').read_text())
    port = config['port']
    storage = None
    if role == 'all' and config.get('split'):
        role = 'proxy'
        storage = _storage_process(directory)
    if utils.set_swift_dir(directory):
        constraints.reload_constraints()
        storage_policy.reload_storage_policies()
    device = {'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'replication_ip': '127.0.0.1'}
    for offset, kind in ((1, 'account'), (2, 'container'), (3, 'object')):
        # One replica on one device; an EC object ring has a replica (fragment index)
        # per device, every partition of replica r on device r.
        names = config.get('devices', ['sda1']) if kind == 'object' else ['sda1']
        devs = [dict(device, id=index, device=name, port=port + offset,
                     replication_port=port + offset) for index, name in enumerate(names)]
        ring.RingData([[index] * 4 for index in range(len(devs))], devs, 30).save(
            os.path.join(directory, '%s.ring.gz' % kind))
    conf = {'devices': os.path.join(directory, 'devs'), 'swift_dir': directory,
            'mount_check': 'false', 'log_level': 'ERROR', 'allow_versions': 'true',
            'log_name': config['name'], 'log_address': '/nonexistent'}
    apps = []
    if role in ('all', 'storage'):
        apps += [(port + 1, account_server.AccountController(conf)),
                 (port + 2, container_server.ContainerController(conf)),
                 (port + 3, object_server.ObjectController(conf))]
    if storage is not None:
        # The proxy answers health checks only once its storage servers listen.
        while any(_port_free(port + offset) for offset in (1, 2, 3)):
            if storage.poll() is not None:
                raise SystemExit('storage servers exited with %s' % storage.returncode)
            time.sleep(0.05)
    if role in ('all', 'proxy'):
        apps.append((port, wsgi.loadapp(os.path.join(directory, 'proxy-server.conf'),
                                        global_conf=conf)))
    null_logger = utils.NullLogger()
    threads = []
    for app_port, app in apps:
        sock = eventlet.listen(('127.0.0.1', app_port), reuse_port=False)
        threads.append(eventlet.spawn(eventlet.wsgi.server, sock, app, null_logger,
                                      protocol=wsgi.SwiftHttpProtocol))
    for thread in threads:
        thread.wait()


def _port_free(port):
    with socket.socket() as sock:
        # SO_REUSEADDR as eventlet.listen: TIME_WAIT leftovers do not count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(('127.0.0.1', port))
        except OSError:
            return False
    return True


if __name__ == '__main__':
    _serve(*sys.argv[1:3])
