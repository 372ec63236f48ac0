"""The options of the ``cloudstore`` Swift middleware and of ``tclouds-cloudstore``, validated.

Both read the ``[filter:cloudstore]`` paste section (a dict of strings). Every missing or
wrong option stops start-up with a message that names it, never a request. Nothing here
imports Swift: the command line tool runs on hosts without a proxy (and Swift reads
``/etc/swift/swift.conf`` when it is imported).
"""
from tclouds_openstack.cloudstore import backends
from tclouds_openstack.cloudstore.backends import base
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import metadata
from tclouds_openstack.cloudstore import placement
from tclouds_openstack.requirements import model

_TRUE = ('true', '1', 'yes', 'on')
_FALSE = ('false', '0', 'no', 'off')


def list_from_csv(value):
    """``"a, b,,c"`` -> ``['a', 'b', 'c']`` (as Swift's own option lists)."""
    return [item.strip() for item in (value or '').split(',') if item.strip()]


def _boolean(conf, option, default, fail):
    value = str(conf.get(option, default)).strip().lower()
    if value not in _TRUE + _FALSE:
        fail('%s must be true or false, not %r' % (option, conf.get(option)))
    return value in _TRUE


class Settings:
    """The middleware's validated options (shared with ``tclouds-cloudstore``)."""

    def __init__(self, conf):
        def fail(message):
            raise ValueError('cloudstore middleware: %s' % message)

        self.policies = list_from_csv(conf.get('policies', 'cloudofclouds'))
        try:
            self.f = int(conf.get('f', 1))
            self.timeout = float(conf.get('timeout', 10))
            self.workers = int(conf.get('workers', 32))
            self.max_object_size = int(conf.get('max_object_size', 2 ** 30))
            self.window_segments = int(conf.get('window_segments', 16))
            # every request to a cloud, whole answer included, whatever its pace
            self.request_deadline = float(conf.get('request_deadline',
                                                   base.DEFAULT_DEADLINE))
        except ValueError as exc:
            fail('f, timeout, workers, max_object_size, window_segments and request_deadline '
                 'must be numbers: %s' % exc)
        if self.f < 0 or self.timeout <= 0 or self.workers < 1 or \
                self.max_object_size < 1 or self.window_segments < 1 or \
                not self.request_deadline > 0:
            fail('need f >= 0, timeout > 0, workers >= 1, max_object_size >= 1, '
                 'window_segments >= 1 and request_deadline > 0')
        names = list_from_csv(conf.get('clouds', ''))
        if len(names) < 3 * self.f + 1:
            fail('clouds lists %d cloud(s); f=%d needs at least %d (n >= 3f + 1)'
                 % (len(names), self.f, 3 * self.f + 1))
        for name in names:
            if not metadata.CLOUD_NAME_RE.match(name):
                fail('cloud name %r: use 1-64 characters [A-Za-z0-9._-]' % name)
        if len(set(names)) != len(names):
            fail('clouds names a cloud twice: %s' % ', '.join(names))
        self.cloud_options = []
        countries = {}
        for name in names:
            prefix = 'cloud_%s_' % name
            options = {key[len(prefix):]: value for key, value in conf.items()
                       if key.startswith(prefix)}
            if 'deadline' in options:
                fail('cloud_%s_deadline: the deadline is one option for every cloud, '
                     'request_deadline' % name)
            options['deadline'] = self.request_deadline
            country = options.pop('country', None)
            if country is not None:
                try:
                    country = model.parse_host_label(country, 'cloud_%s_country' % name)
                except model.InvalidRequirement as exc:
                    fail(str(exc))
            countries[name] = country
            self.cloud_options.append((name, options))
        self.placement = placement.Placement(names, countries, self.f)
        self.private_key = None
        try:
            if conf.get('writer_key_file'):
                with open(conf['writer_key_file'], 'rb') as stream:
                    self.private_key = metadata.load_private_key(stream.read())
                self.public_key = self.private_key.public_key()
            elif conf.get('writer_public_key_file'):
                with open(conf['writer_public_key_file'], 'rb') as stream:
                    self.public_key = metadata.load_public_key(stream.read())
            else:
                fail('set writer_key_file (or writer_public_key_file for a read-only proxy)')
        except OSError as exc:
            fail('cannot read the writer key: %s' % exc)
        except errors.CloudStoreError as exc:
            fail(str(exc))
        self.fault_log = conf.get('fault_log') or None
        # Objects by jurisdiction: a project's stored trust requirement decides which
        # clouds its containers may use. Reading it needs the tclouds configuration
        # ([trust_scheduling]: service credential, endpoint, cache); turning it off must
        # be said explicitly, because restricted projects' objects then go anywhere.
        self.project_requirements = _boolean(conf, 'project_requirements', 'true', fail)
        self.tclouds_config_file = conf.get('tclouds_config_file') or None
        if self.project_requirements and not self.tclouds_config_file:
            fail('project_requirements is on: set tclouds_config_file to the tclouds '
                 'configuration whose [trust_scheduling] section holds the service '
                 'credential that reads the trust requirements API (or set '
                 'project_requirements = false: every project\'s objects then go to all '
                 'clouds, whatever its jurisdiction)')
        self.reseller_prefixes = list_from_csv(conf.get('reseller_prefix', 'AUTH_'))
        if not self.reseller_prefixes:
            fail('reseller_prefix must name at least one account prefix (AUTH_)')
        # Where fragments went: notifications (and the secure log) from the tclouds
        # configuration's [oslo_messaging_notifications], when it names a driver.
        self.notifications = _boolean(conf, 'notifications', 'true', fail)

    def build_clouds(self):
        try:
            return [backends.load(name, options) for name, options in self.cloud_options]
        except errors.CloudStoreError as exc:
            raise ValueError('cloudstore middleware: %s' % exc)
