"""Guard: no test reads machine configuration (tests/conftest.py installs it, see there).

Every Python process of a test run imports this module: the pytest process through the
conftest, the processes the tests start through ``PYTHONPATH`` (the conftest puts this
directory first). An audit hook notes each open, listing or scan of a path under
``/etc/<service>`` or ``~/.<service>`` of the services the suite runs (their configuration
where they are installed) in the file named by ``TCLOUDS_MACHINE_CONFIG_LOG``, one line
each; the conftest fails the test during which a line appeared, and the run.

Opens only happen where such files exist; CI machines have none. So the guard also notes,
on any machine, each time oslo.config *looks* for a file there (or for ``<service>.conf``
in ``/etc`` or ``~``): a ``ConfigOpts`` called without ``default_config_files=[]`` and
``default_config_dirs=[]``, or a ``find_file`` (oslo.policy's ``policy.yaml`` and
``policy.d``) that falls back to the project's default directories.

Self-contained (the standard library only): it runs before anything else of a process.
"""
import os
import sys
import threading
import traceback

SERVICES = ('tclouds', 'nova', 'cinder', 'keystone', 'swift', 'glance', 'placement')
_HOME = os.path.expanduser('~')
FORBIDDEN = tuple(['/etc/%s' % s for s in SERVICES]
                  + ['%s/.%s' % (_HOME, s) for s in SERVICES if _HOME not in ('', '/')])
_EVENTS = frozenset(['open', 'os.listdir', 'os.scandir'])
_busy = threading.local()


def forbidden(path):
    """True for a path inside one of the machine-configuration locations."""
    if isinstance(path, int) or path is None:
        return False            # an already open descriptor
    try:
        path = os.fsdecode(os.fspath(path))
    except TypeError:
        return False
    path = os.path.normpath(os.path.join(os.getcwd(), path)) if not path.startswith('/') \
        else os.path.normpath(path)
    return any(path == f or path.startswith(f + '/') for f in FORBIDDEN)


def record(log, what):
    """Append one line (what, process, where) to the log; O_APPEND keeps lines whole."""
    stack = ''.join(traceback.format_stack(limit=12)[:-2])
    line = ('%s | pid %d %s\n%s' % (what, os.getpid(), ' '.join(sys.argv)[:200], stack)) \
        .replace('\n', '\\n') + '\n'
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode('utf-8', 'replace'))
    finally:
        os.close(fd)


_SERVICE_FILES = frozenset('%s%s' % (s, ext) for s in SERVICES for ext in ('.conf', '.conf.d'))


def _machine_candidates(cfg, names, project):
    """The machine-configuration paths oslo.config would try for ``names``."""
    found = []
    for d in cfg._get_config_dirs(project):
        for name in names:
            path = os.path.join(d, name)
            if forbidden(path) or (d in ('/etc', _HOME) and name in _SERVICE_FILES):
                found.append(path)
    return found


def _given(args, option):
    return any(a == option or a.startswith(option + '=') for a in args)


def _guard_lookups(cfg, log):
    """Note each ConfigOpts call and find_file that would search the default locations.

    ``ConfigOpts.__call__`` searches them for ``<project>.conf`` and ``<prog>.conf`` unless
    given ``default_config_files`` (or ``--config-file``), for ``.conf.d`` directories
    unless given ``default_config_dirs`` (or ``--config-dir``); ``find_file`` (oslo.policy's
    policy.yaml, policy.d) for any relative name.
    """
    import inspect
    call, find_file = cfg.ConfigOpts.__call__, cfg.ConfigOpts.find_file
    signature = inspect.signature(call)

    def note(what, paths):
        if paths:
            try:
                record(log, 'oslo.config %s: %s' % (what, ' '.join(paths)))
            except Exception:
                pass

    def __call__(self, *args, **kwargs):
        try:
            bound = signature.bind(self, *args, **kwargs).arguments
            argv = bound.get('args')
            argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
            project = bound.get('project')
            prog = bound.get('prog') or os.path.basename(sys.argv[0]).rsplit('.py', 1)[0]
            names = [n for n in (project, prog) if n]
            if bound.get('default_config_files') is None and not _given(argv, '--config-file'):
                note('reads default config files', _machine_candidates(
                    cfg, [n + '.conf' for n in names], project))
            if bound.get('default_config_dirs') is None and not _given(argv, '--config-dir'):
                note('reads default config dirs', _machine_candidates(
                    cfg, [n + '.conf.d' for n in names], project))
        except Exception:
            pass
        return call(self, *args, **kwargs)

    def find_file_(self, name):
        if not os.path.isabs(name):
            try:
                note('looks for %s in default dirs' % name,
                     _machine_candidates(cfg, [name], self.project))
            except Exception:
                pass
        return find_file(self, name)

    cfg.ConfigOpts.__call__ = __call__
    cfg.ConfigOpts.find_file = find_file_


class _AfterImport:
    """Meta path finder: wrap oslo_config.cfg right after it is first imported."""

    def __init__(self, log):
        self.log = log

    def find_spec(self, name, path=None, target=None):
        if name != 'oslo_config.cfg':
            return None
        import importlib.machinery
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        original, log = spec.loader.exec_module, self.log

        def exec_module(module):
            original(module)
            _guard_lookups(module, log)

        spec.loader.exec_module = exec_module
        return spec


def install(log):
    def hook(event, args):
        if event not in _EVENTS or getattr(_busy, 'on', False):
            return
        if not args or not forbidden(args[0]):
            return
        _busy.on = True
        try:
            record(log, '%s %s' % (event, os.fsdecode(os.fspath(args[0]))))
        except Exception:       # never break the process the guard watches
            pass
        finally:
            _busy.on = False
    sys.addaudithook(hook)
    if 'oslo_config.cfg' in sys.modules:
        _guard_lookups(sys.modules['oslo_config.cfg'], log)
    else:
        sys.meta_path.insert(0, _AfterImport(log))


if os.environ.get('TCLOUDS_MACHINE_CONFIG_LOG') and not getattr(sys, '_tclouds_guarded', False):
    sys._tclouds_guarded = True
    install(os.environ['TCLOUDS_MACHINE_CONFIG_LOG'])
