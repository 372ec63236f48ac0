"""``tclouds-blockstore``: create, serve, check, inspect, resize, rotate and upgrade volumes.

Keys come from a file (``--key-file``, development) or the key manager (``--key-id``,
through castellan as configured by ``--config-file``); the freshness anchor from a file
(``--anchor PATH``) or the key service (``--anchor key-service:<Cinder volume ID>``: the
key release API, reached with the ``[tclouds_key_manager]`` credentials of
``--config-file``). ``serve``
replaces itself with nbdkit (its PID is the server's) and hands the key over an inherited
pipe, never a file. Exit codes: 0 fine, 1 an integrity check
failed (``check`` names the first bad sector), 2 unusable input (wrong key, bad header,
missing anchor, bad arguments). Errors are one line on stderr, never a traceback.
"""
import argparse
import json
import os
import shutil
import socket
import sys
import sysconfig
import time

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import keys
from tclouds_openstack.blockstore import storage

EXIT_OK, EXIT_INTEGRITY, EXIT_INPUT = 0, 1, 2
PLUGIN = os.path.join(os.path.dirname(fmt.__file__), 'nbd_plugin.py')


class InputError(Exception):
    """An argument or file that cannot be used (exit 2)."""


def parse_size(text):
    units = {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
    value = text.strip().upper().rstrip('B').rstrip('I')
    unit = value[-1:] if value[-1:] in units else ''
    try:
        number = int(value[:-1] if unit else value)
    except ValueError:
        raise InputError('size %r: expected a number with an optional K/M/G/T suffix' % text)
    if number <= 0:
        raise InputError('size %r must be positive' % text)
    return number * units[unit]


def get_key(args):
    """The key-encryption key as bytes, from --key-file or the key manager."""
    if args.key_file:
        try:
            with open(args.key_file, 'rb') as f:
                raw = f.read()
        except OSError as exc:
            raise InputError('cannot read key file %s: %s' % (args.key_file, exc.strerror))
        return keys.parse_key(raw)
    if args.key_id:
        return keys.key_from_manager(args.key_id, args.config_file)
    raise InputError('give --key-file or --key-id')


ANCHOR_SERVICE = 'key-service'


def is_key_service(spec):
    """``key-service:<Cinder volume ID>`` (or bare ``key-service``, refused with a reason)."""
    return spec == ANCHOR_SERVICE or spec.startswith(ANCHOR_SERVICE + ':')


def get_anchor(args, spec=None):
    """The freshness anchor: a file, or the key service (``key-service:<volume>``)."""
    spec = spec or args.anchor
    if is_key_service(spec):
        from tclouds_openstack.keymgr import client
        return client.anchor_for(spec, args.config_file)
    return storage.FileAnchor(spec)


def _cache_bytes(args):
    return getattr(args, 'cache_mb', 64) << 20


def _storage(args, path, readonly=True):
    """A FileStorage closed when the command ends (main), releasing the writer lock."""
    st = storage.FileStorage(path, readonly=readonly)
    args.opened.append(st)
    return st


def _open(args, readonly=True, key=None):
    st = _storage(args, args.volume, readonly)
    return fmt.Volume.open(st, key or get_key(args), get_anchor(args), readonly=readonly,
                           cache_bytes=_cache_bytes(args))


def cmd_create(args):
    existed = os.path.exists(args.volume)
    if existed and not args.force:
        raise InputError('%s exists (use --force to overwrite)' % args.volume)
    key, anchor = get_key(args), get_anchor(args)
    st = _storage(args, args.volume, readonly=False)
    try:
        vol = fmt.Volume.create(st, key, anchor, parse_size(args.size),
                                key_ref=args.key_id or '')
    except BaseException:
        if not existed:            # no half-made volume file left behind
            os.unlink(args.volume)
        raise
    print(json.dumps(vol.info(), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_info(args):
    if args.key_file or args.key_id:
        if not args.anchor:
            raise InputError('info with a key needs --anchor (the anchor state is shown)')
        print(json.dumps(_open(args).info(), indent=2, sort_keys=True))
        return EXIT_OK
    header, _ = fmt.Volume.read_header(_storage(args, args.volume))
    info = {'uuid': header.uuid_str, 'format_version': header.format_version,
            'cipher': header.cipher,
            'sector_size': header.sector_size, 'sector_count': header.sector_count,
            'merkle_tree': header.merkle, 'header_generation': header.generation,
            'key_ref': header.key_ref}
    print(json.dumps(info, indent=2, sort_keys=True))
    return EXIT_OK


def cmd_check(args):
    vol = _open(args)
    start = time.perf_counter()
    bad = vol.scrub(stop_at_first=not args.all)
    seconds = time.perf_counter() - start
    if not bad:
        print('volume %s: all %d sectors verified (anchor version %d; %d MiB of written '
              'data decrypted in %.2f s)'
              % (vol.uuid, vol.header.sector_count, vol.info()['anchor_version'],
                 vol.scrubbed * fmt.SECTOR_SIZE >> 20, seconds))
        return EXIT_OK
    for exc in bad:
        print(str(exc), file=sys.stderr)
    return EXIT_INTEGRITY


def cmd_resize(args):
    vol = _open(args, readonly=False)
    vol.resize(parse_size(args.size), get_key(args))
    print(json.dumps(vol.info(), indent=2, sort_keys=True))
    return EXIT_OK


class _Progress:
    """One line per step of the scan (stderr), for operators and for tests to wait on."""

    def __init__(self, what, step=0.02):
        self.what = what
        self.step = step
        self.next = 0.0

    def __call__(self, position, total, done=None):
        fraction = position / total if total else 1.0
        if fraction < self.next and position < total:
            return
        self.next = fraction + self.step
        extra = '' if done is None else ', %d MiB re-encrypted' % (
            done * fmt.SECTOR_SIZE >> 20)
        print('%s: %.0f%% of the volume scanned%s' % (self.what, 100 * fraction, extra),
              file=sys.stderr, flush=True)


def _new_key(args):
    if args.new_key_id:
        return keys.key_from_manager(args.new_key_id, args.config_file)
    try:
        with open(args.new_key_file, 'rb') as f:
            return keys.parse_key(f.read())
    except OSError as exc:
        raise InputError('cannot read %s: %s' % (args.new_key_file, exc.strerror))


def cmd_rotate_key(args):
    """Rotate the data key (re-encrypting every written sector), or with --kek-only just rewrap it.

    See doc/source/blockstore.rst for exactly what each protects.
    """
    kek = get_key(args)
    vol = _open(args, readonly=False, key=kek)
    if vol.format_version < 2:
        raise InputError('volume %s is format version 1: upgrade it first' % vol.uuid)
    new = _new_key(args) if (args.new_key_file or args.new_key_id) else None
    if args.kek_only:
        if new is None:
            raise InputError('--kek-only needs --new-key-file or --new-key-id')
        vol.rotate_kek(new, key_ref=args.new_key_id or '')
        print('volume %s: data key rewrapped under the new key-encryption key (header '
              'generation %d). The data key is unchanged: an older copy of the header '
              'with the old key-encryption key still decrypts every sector.'
              % (vol.uuid, vol.header.generation))
        return EXIT_OK
    if new is None:
        if not vol.keys.rotating:
            raise InputError('give --new-key-file or --new-key-id (or --kek-only)')
        new = kek                     # resume an interrupted rotation under the same key
    elif vol.keys.rotating:
        print('volume %s: resuming an interrupted data key rotation' % vol.uuid,
              file=sys.stderr)
    done = vol.rotate_keys(new, key_ref=args.new_key_id or '',
                           progress=_Progress('rotate-key %s' % vol.uuid))
    print('volume %s: data key rotated to generation %d, %d sectors re-encrypted, header '
          'generation %d; the old key-encryption key and old data key open nothing written '
          'now, but still decrypt copies of the volume taken before the rotation'
          % (vol.uuid, vol.keys.current_gen, done, vol.header.generation))
    return EXIT_OK


def cmd_upgrade(args):
    """Copy a format 1 volume into a new format 2 volume (the source is only read)."""
    kek = get_key(args)
    src = _open(args, readonly=True, key=kek)
    if src.format_version != 1:
        raise InputError('%s is already format version %d' % (args.volume,
                                                              src.format_version))
    bad = src.scrub(stop_at_first=True)
    if bad:
        raise errors.IntegrityError(bad[0].sector, bad[0].check,
                                    'the source does not verify, nothing copied: %s'
                                    % bad[0].detail)
    if os.path.exists(args.to) and not args.force:
        raise InputError('%s exists (use --force to overwrite)' % args.to)
    dst_anchor = get_anchor(args, args.to_anchor)
    st = _storage(args, args.to, readonly=False)
    dst = fmt.Volume.create(st, kek, dst_anchor, src.size, key_ref=src.header.key_ref,
                            cache_bytes=_cache_bytes(args))
    progress = _Progress('upgrade %s' % src.uuid)
    for first, count in src.written_runs():
        progress(first, src.header.sector_count)
        dst.write_sectors(first, src.read_sectors(first, count))
    dst.flush()
    print(json.dumps(dict(dst.info(), upgraded_from=src.uuid), indent=2, sort_keys=True))
    return EXIT_OK


def plugin_environment(env=None):
    """Environment for nbdkit's embedded Debian libpython: see feasibility-nbd.md.

    PYTHONPATH puts this interpreter's site-packages (recent cryptography) and this
    package's parent directory ahead of Debian's dist-packages.
    """
    env = dict(os.environ if env is None else env)
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(fmt.__file__)))
    paths = [package_parent, sysconfig.get_paths()['purelib'],
             sysconfig.get_paths()['platlib']]
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(dict.fromkeys(paths))
    return env


def nbdkit_command(volume, anchor, socket_path, keyfd, events=None, readonly=False,
                   sync_metadata=False, notify_config=None, config_files=(), cache_mb=None):
    nbdkit = shutil.which('nbdkit')
    if nbdkit is None:
        raise InputError('nbdkit is not installed (Debian packages nbdkit and '
                         'nbdkit-plugin-python)')
    if not is_key_service(anchor):
        anchor = os.path.abspath(anchor)
    cmd = [nbdkit, '--foreground', '--unix', socket_path, 'python', PLUGIN,
           'volume=%s' % os.path.abspath(volume), 'anchor=%s' % anchor, 'keyfd=%d' % keyfd]
    if config_files:
        cmd.append('config=%s' % ','.join(os.path.abspath(f) for f in config_files))
    if events:
        cmd.append('events=%s' % os.path.abspath(events))
    if readonly:
        cmd += ['--readonly', 'readonly=1']
    if sync_metadata:
        cmd.append('sync_metadata=1')
    if notify_config:
        cmd.append('notify_config=%s' % os.path.abspath(notify_config))
    if cache_mb:
        cmd.append('cache_mb=%d' % cache_mb)
    return cmd


def key_pipe(key):
    """A pipe whose read end (inheritable) yields the key once: no key file on disk."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, key.hex().encode())
    os.close(write_fd)
    os.set_inheritable(read_fd, True)
    return read_fd


def wait_listening(path, proc, timeout):
    """Wait until the unix socket ``path`` accepts connections or ``proc`` exits.

    True once it accepts, False if ``proc`` exited first; TimeoutError when neither
    happened within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            probe.close()
    raise TimeoutError('nothing listens on %s after %.0f s' % (path, timeout))


def _remove_stale_socket(path):
    """Remove a socket file left by a killed server, only when nothing listens on it."""
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        return
    except OSError as exc:
        raise InputError('socket path %s is unusable: %s' % (path, exc))
    finally:
        probe.close()
    raise InputError('socket %s is in use by another server' % path)


def cmd_serve(args):
    key = get_key(args)
    # Fail fast with a clear exit code on a wrong key, before starting nbdkit (the plugin
    # checks again and opens the volume before serving).
    header, _ = fmt.Volume.read_header(_storage(args, args.volume))
    fmt.unwrap_key(header, key)
    readonly = args.readonly
    if header.format_version == 1 and not readonly:
        print('tclouds-blockstore: volume %s is format version 1: served read-only (convert '
              'it with "tclouds-blockstore upgrade")' % header.uuid_str, file=sys.stderr)
        readonly = True
    _remove_stale_socket(args.socket)
    read_fd = key_pipe(key)
    cmd = nbdkit_command(args.volume, args.anchor, args.socket, read_fd, args.events,
                         readonly, args.sync_metadata, args.notify_config,
                         args.config_file, cache_mb=args.cache_mb)
    os.execve(cmd[0], cmd, plugin_environment())


def cmd_key_release_api(args):
    """Run the key release API (controller side of the tclouds key manager).

    The application uwsgi serves (tclouds_openstack.wsgi.key_release_api), standalone.
    """
    from tclouds_openstack.common import wsgi
    from tclouds_openstack import conf as tc_conf
    from tclouds_openstack import wsgi as wsgi_entry
    from tclouds_openstack.wsgi import key_release_api

    conf = tc_conf.CONF
    conf(args=[], project='tclouds', default_config_files=args.config_file or None)
    try:
        app = key_release_api.build(conf)
    except wsgi_entry.NotStarting as exc:
        raise InputError(str(exc))
    group = conf.tclouds_key_manager
    wsgi.serve(app, group.api_host, group.api_port, conf)
    return EXIT_OK


def build_parser():
    parser = argparse.ArgumentParser(prog='tclouds-blockstore', description=__doc__.split(
        '\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)

    def common(p, anchor=True):
        p.add_argument('volume', help='volume file')
        if anchor:
            p.add_argument('--anchor', required=True,
                           help='freshness anchor file (on trusted local storage), or '
                                '"key-service:<Cinder volume ID>" for the key release API')
        p.add_argument('--key-file', help='file with the 32-byte key (raw or 64 hex chars)')
        p.add_argument('--key-id', help='key manager (castellan) id of the key')
        p.add_argument('--config-file', action='append', default=[],
                       help='oslo.config file with the [key_manager] section (--key-id)')

    def cache(p):
        p.add_argument('--cache-mb', type=int, default=64,
                       help='memory for cached tree nodes and sector records (MiB)')

    p = sub.add_parser('create', help='format a new protected volume')
    common(p)
    p.add_argument('--size', required=True, help='size, e.g. 256M, 10G, 1T')
    p.add_argument('--force', action='store_true', help='overwrite an existing file')
    p.set_defaults(func=cmd_create)
    p = sub.add_parser('serve', help='export the verified view over NBD (unix socket)')
    common(p)
    p.add_argument('--socket', required=True, help='unix socket path for the NBD export')
    p.add_argument('--events', help='append integrity failure events (JSON lines) here')
    p.add_argument('--readonly', action='store_true')
    p.add_argument('--notify-config',
                   help='oslo.config file with transport_url and [oslo_messaging_notifications]:'
                        ' integrity failures are sent as blockstore.integrity.failed')
    p.add_argument('--sync-metadata', action='store_true',
                   help='fdatasync between journal and data writes (power-loss ordering)')
    cache(p)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser('check', help='full scrub; exit 1 naming the first bad sector')
    common(p)
    p.add_argument('--all', action='store_true', help='report every bad sector')
    cache(p)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser('info', help='show header (and anchor state when a key is given)')
    common(p, anchor=False)
    p.add_argument('--anchor', help='freshness anchor file (needed with a key)')
    p.set_defaults(func=cmd_info)
    p = sub.add_parser('resize', help='grow or shrink (new sectors read as zeros)')
    common(p)
    p.add_argument('--size', required=True)
    p.set_defaults(func=cmd_resize)
    p = sub.add_parser('rotate-key', help='rotate the data key: re-encrypt every written '
                       'sector under a new one, wrapped under the new key-encryption key')
    common(p)
    p.add_argument('--new-key-file', help='the new key-encryption key (32 raw bytes or 64 '
                   'hex characters); omit to resume an interrupted rotation')
    p.add_argument('--new-key-id', help='key manager id of the new key-encryption key')
    p.add_argument('--kek-only', action='store_true',
                   help='only rewrap the data key under the new key-encryption key (fast, '
                        'but an older copy of the header with the old key still decrypts '
                        'everything)')
    cache(p)
    p.set_defaults(func=cmd_rotate_key)
    p = sub.add_parser('upgrade', help='copy a format 1 volume into a new format 2 volume')
    common(p)
    p.add_argument('--to', required=True, help='the new volume file')
    p.add_argument('--to-anchor', help='anchor of the new volume, a file or '
                   '"key-service:<volume>" (default: --anchor)')
    p.add_argument('--force', action='store_true', help='overwrite an existing --to file')
    cache(p)
    p.set_defaults(func=cmd_upgrade)
    p = sub.add_parser('key-release-api',
                       help='run the attestation-gated key release API (controller)')
    p.add_argument('--config-file', action='append', default=[],
                   help='tclouds.conf with [tclouds_key_manager], [attestation], [api], '
                        '[keystone_authtoken], [oslo_messaging_notifications]')
    p.set_defaults(func=cmd_key_release_api)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.opened = []
    try:
        return args.func(args)
    except errors.IntegrityError as exc:
        print('tclouds-blockstore: %s' % exc, file=sys.stderr)
        return EXIT_INTEGRITY
    except (errors.BlockstoreError, InputError) as exc:
        print('tclouds-blockstore: %s' % exc, file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        # stdout closed early (| head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        for st in args.opened:
            st.close()


if __name__ == '__main__':
    sys.exit(main())
