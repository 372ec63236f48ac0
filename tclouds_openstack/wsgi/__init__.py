"""WSGI entry points of the tclouds REST APIs, for uwsgi (``module =
tclouds_openstack.wsgi.<api>:application``) or mod_wsgi, as Nova and Keystone ship theirs.

Each module exposes ``application``, built on its first request from the configuration
files named by ``TCLOUDS_CONFIG_FILE`` (comma-separated; default
``/etc/tclouds/tclouds.conf``), so importing a module reads nothing. The console scripts
(``tclouds-attestation-api``, ``tclouds-securelog-api``, ``tclouds-blockstore
key-release-api``) serve the applications these modules build (each module's ``build(conf)``)
with the project's standalone server, for the demo and tests: one builder per API.
"""
import os
import sys
import threading

DEFAULT_CONFIG_FILE = '/etc/tclouds/tclouds.conf'


def config_files(environ=None):
    """The configuration files of ``TCLOUDS_CONFIG_FILE`` (default the one tclouds.conf)."""
    value = (environ if environ is not None else os.environ).get('TCLOUDS_CONFIG_FILE')
    files = [f.strip() for f in (value or DEFAULT_CONFIG_FILE).split(',') if f.strip()]
    return files


def load_conf(prog, files=None, conf=None, setup_logging=True, project='tclouds'):
    """The configuration parsed from ``files`` (default :func:`config_files`) only.

    No configuration directories are read.
    ``conf``: the ConfigOpts to parse into (default tclouds' process-wide one, as a server
    process has one application); oslo.log is set up for ``prog`` unless told not to.
    ``project`` names where oslo.policy looks for policy files (/etc/<project>/).
    """
    from oslo_log import log as logging

    from tclouds_openstack import conf as tconf
    conf = conf if conf is not None else tconf.CONF
    files = files or config_files()
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise RuntimeError('%s: configuration file(s) not found: %s'
                           % (prog, ', '.join(missing)))
    logging.register_options(conf)
    conf(args=[], project=project, prog=prog, default_config_files=files,
         default_config_dirs=[])
    if setup_logging:
        logging.setup(conf, prog)
    return conf


class LazyApplication(object):
    """A WSGI application built once, on the first request, by ``build(conf)``.

    A failure to build is raised to the server (uwsgi logs it and answers 500) and retried
    on the next request, so a service that starts before its database is reachable
    recovers without a restart.
    """

    def __init__(self, prog, build, load=load_conf):
        self.prog = prog
        self._build = build
        self._load = load
        self._app = None
        self._lock = threading.Lock()

    def get(self):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._build(self._load(self.prog))
        return self._app

    def __call__(self, environ, start_response):
        return self.get()(environ, start_response)


class NotStarting(RuntimeError):
    """An API that cannot start (outdated schema, bad configuration); already said why."""


def fail(prog, message):
    """Refuse to start with one line on stderr (what uwsgi's log shows), no traceback.

    The console scripts serving the same applications catch :class:`NotStarting` and
    exit 1.
    """
    print('%s: not starting: %s' % (prog, message), file=sys.stderr)
    raise NotStarting(message)
