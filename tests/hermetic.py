"""Configuration for tests and benchmarks that never comes from the machine.

oslo.config reads machine configuration unless told not to: ``conf([], project='tclouds')``
reads ``/etc/tclouds/tclouds.conf`` (or ``~/.tclouds/...``) and every file in
``/etc/tclouds/tclouds.conf.d``; ``default_config_files=[]`` stops only the first, and
``--config-file`` on a command line likewise replaces only the files, not the directories.
oslo.policy then looks for ``policy.yaml`` and ``policy.d`` beside the configuration files
and in the same default directories. On a machine where the product (or DevStack) is
installed, a test would run with the operator's settings, or fail on them.

* :func:`parse`: parse a ConfigOpts from the given files only, with no policy file lookup.
* :data:`POLICY_SECTION`: the same for a configuration file a test writes for a service it
  starts; :func:`service_args` the command-line options that keep the service to that file.
* :class:`NoDefaultConfigDirs`: for code we do not own that calls oslo.config without
  ``default_config_dirs`` (Nova's, Cinder's and Placement's test fixtures, oslo.middleware
  in their paste pipelines): oslo.config has no default directories while it is active.
* :func:`import_swift`: Swift reads ``/etc/swift/swift.conf`` while it is imported, before
  any caller can name another ``swift_dir``; import it without that read.

tests/conftest.py fails any test that still reads, or looks for, such files.
"""
import builtins
import errno
import os

import fixtures

# Where the tests' policy file and directory "are": nowhere, so the in-code defaults apply.
ABSENT = '/nonexistent/tclouds-tests'
POLICY_FILE = ABSENT + '/policy.yaml'
POLICY_DIR = ABSENT + '/policy.d'
POLICY_SECTION = '[oslo_policy]\npolicy_file = %s\npolicy_dirs = %s\n' % (POLICY_FILE, POLICY_DIR)
SWIFT_CONF = '/etc/swift/swift.conf'
# Swift's test suite reads its own settings from here (default /etc/swift/test.conf).
SWIFT_TEST_CONFIG = ABSENT + '/swift-test.conf'


def no_policy_files(conf):
    """Point oslo.policy's policy_file and policy_dirs defaults at nothing."""
    from oslo_policy import opts as policy_opts
    policy_opts.set_defaults(conf)      # registers [oslo_policy] on conf
    conf.set_default('policy_file', POLICY_FILE, group='oslo_policy')
    conf.set_default('policy_dirs', [POLICY_DIR], group='oslo_policy')
    return conf


def parse(conf, files=(), project='tclouds', args=()):
    """``conf(args)`` reading ``files`` and nothing else; returns ``conf``."""
    conf(list(args), project=project, default_config_files=[str(f) for f in files],
         default_config_dirs=[])
    return no_policy_files(conf)


def service_args(config_file, workdir):
    """Options for a tclouds service started by a test: only ``config_file`` is read.

    ``--config-dir`` names an empty directory (made in ``workdir``): oslo.config then reads
    no ``/etc/tclouds/tclouds.conf.d``. The file itself should hold :data:`POLICY_SECTION`.
    """
    empty = os.path.join(str(workdir), 'empty-config-dir')
    os.makedirs(empty, exist_ok=True)
    return ['--config-file', str(config_file), '--config-dir', empty]


class NoDefaultConfigDirs(fixtures.Fixture):
    """oslo.config searches no default directory (/etc/<project>, ~/.<project>, ...)."""

    def _setUp(self):
        from oslo_config import cfg
        # The one function behind find_config_files, find_config_dirs and find_file.
        self.useFixture(fixtures.MonkeyPatch('oslo_config.cfg._get_config_dirs',
                                             lambda project=None: []))
        assert cfg._get_config_dirs('nova') == []


def import_swift():
    """Import ``swift.common.utils`` without reading /etc/swift/swift.conf; return it.

    Importing it reads the hash path settings from /etc/swift/swift.conf (a garbage file
    there breaks the import), and importing ``swift.common.constraints`` and
    ``storage_policy`` reads the file again, all before ``set_swift_dir``. Here the first
    read finds no file, as on a machine without Swift, and ``SWIFT_CONF_FILE`` then names
    nothing until the caller's ``set_swift_dir`` points it at the test's own swift.conf.
    """
    import sys
    if 'swift.common.utils' in sys.modules:
        raise RuntimeError('swift.common.utils was imported before import_swift()')
    real_open = builtins.open

    def open_(file, *args, **kwargs):
        if file == SWIFT_CONF:
            raise FileNotFoundError(errno.ENOENT, 'not read by tests', file)
        return real_open(file, *args, **kwargs)

    builtins.open = open_
    try:
        from swift.common import utils
    finally:
        builtins.open = real_open
    utils.SWIFT_CONF_FILE = os.path.join(ABSENT, 'swift.conf')
    return utils
