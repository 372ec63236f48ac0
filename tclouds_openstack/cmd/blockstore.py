"""``tclouds-blockstore``: create, serve, check and inspect protected volumes.

Keys come from a file (``--key-file``, development) or the key manager (``--key-id``,
through castellan as configured by ``--config-file``); the freshness anchor from a file
(``--anchor PATH``) or the key service (``--anchor key-service``: the key release API,
reached with the ``[tclouds_key_manager]`` credentials of ``--config-file``). ``serve``
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


def get_anchor(args):
    """The freshness anchor: a file, or the key service (``--anchor key-service``)."""
    if args.anchor == ANCHOR_SERVICE:
        from tclouds_openstack.keymgr import client
        return client.anchor_from_config(args.config_file)
    return storage.FileAnchor(args.anchor)


def _open(args, readonly=True):
    st = storage.FileStorage(args.volume, readonly=readonly)
    return fmt.Volume.open(st, get_key(args), get_anchor(args), readonly=readonly)


def cmd_create(args):
    if os.path.exists(args.volume) and not args.force:
        raise InputError('%s exists (use --force to overwrite)' % args.volume)
    st = storage.FileStorage(args.volume)
    vol = fmt.Volume.create(st, get_key(args), get_anchor(args),
                            parse_size(args.size), merkle_tree=not args.no_merkle,
                            key_ref=args.key_id or '')
    print(json.dumps(vol.info(), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_info(args):
    if args.key_file or args.key_id:
        if not args.anchor:
            raise InputError('info with a key needs --anchor (the anchor state is shown)')
        print(json.dumps(_open(args).info(), indent=2, sort_keys=True))
        return EXIT_OK
    header, _ = fmt.Volume.read_header(storage.FileStorage(args.volume, readonly=True))
    info = {'format_version': header.format_version, 'cipher': header.cipher,
            'sector_size': header.sector_size, 'sector_count': header.sector_count,
            'merkle_tree': header.merkle, 'header_generation': header.generation,
            'key_ref': header.key_ref}
    print(json.dumps(info, indent=2, sort_keys=True))
    return EXIT_OK


def cmd_check(args):
    vol = _open(args)
    bad = vol.scrub(stop_at_first=not args.all)
    if not bad:
        print('volume %s: all %d sectors verified (anchor version %d)'
              % (vol.uuid, vol.header.sector_count, vol.info()['anchor_version']))
        return EXIT_OK
    for exc in bad:
        print(str(exc), file=sys.stderr)
    return EXIT_INTEGRITY


def cmd_resize(args):
    vol = _open(args, readonly=False)
    vol.resize(parse_size(args.size), get_key(args))
    print(json.dumps(vol.info(), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_rotate_key(args):
    vol = _open(args, readonly=False)
    try:
        with open(args.new_key_file, 'rb') as f:
            new = keys.parse_key(f.read())
    except OSError as exc:
        raise InputError('cannot read %s: %s' % (args.new_key_file, exc.strerror))
    vol.rotate_kek(new)
    print('volume %s: data key rewrapped, header generation %d'
          % (vol.uuid, vol.header.generation))
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
                   sync_metadata=False, notify_config=None, config_files=()):
    nbdkit = shutil.which('nbdkit')
    if nbdkit is None:
        raise InputError('nbdkit is not installed (Debian packages nbdkit and '
                         'nbdkit-plugin-python)')
    if anchor != ANCHOR_SERVICE:
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
    header, _ = fmt.Volume.read_header(storage.FileStorage(args.volume, readonly=True))
    fmt.unwrap_key(header, key)
    _remove_stale_socket(args.socket)
    read_fd = key_pipe(key)
    cmd = nbdkit_command(args.volume, args.anchor, args.socket, read_fd, args.events,
                         args.readonly, args.sync_metadata, args.notify_config,
                         args.config_file)
    os.execve(cmd[0], cmd, plugin_environment())


def cmd_key_release_api(args):
    """Run the key release API (controller side of the tclouds key manager)."""
    from oslo_config import cfg

    from tclouds_openstack.common import wsgi
    from tclouds_openstack import conf as tc_conf
    from tclouds_openstack.keymgr import api

    conf = tc_conf.CONF
    conf(args=[], project='tclouds', default_config_files=args.config_file or None)
    try:
        app = api.build_app(conf)
    except cfg.Error as exc:
        raise InputError('configuration: %s' % exc)
    group = conf.tclouds_key_manager
    wsgi.serve(app, group.api_host, group.api_port)
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
                                '"key-service" for the key release API')
        p.add_argument('--key-file', help='file with the 32-byte key (raw or 64 hex chars)')
        p.add_argument('--key-id', help='key manager (castellan) id of the key')
        p.add_argument('--config-file', action='append', default=[],
                       help='oslo.config file with the [key_manager] section (--key-id)')

    p = sub.add_parser('create', help='format a new protected volume')
    common(p)
    p.add_argument('--size', required=True, help='size, e.g. 256M, 10G')
    p.add_argument('--no-merkle', action='store_true',
                   help='no Merkle tree (no freshness; for measurement only)')
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
                   help='fdatasync between record and data writes (power-loss ordering)')
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser('check', help='full scrub; exit 1 naming the first bad sector')
    common(p)
    p.add_argument('--all', action='store_true', help='report every bad sector')
    p.set_defaults(func=cmd_check)
    p = sub.add_parser('info', help='show header (and anchor state when a key is given)')
    common(p, anchor=False)
    p.add_argument('--anchor', help='freshness anchor file (needed with a key)')
    p.set_defaults(func=cmd_info)
    p = sub.add_parser('resize', help='grow or shrink (new sectors read as zeros)')
    common(p)
    p.add_argument('--size', required=True)
    p.set_defaults(func=cmd_resize)
    p = sub.add_parser('rotate-key', help='rewrap the data key (rewrites the header only)')
    common(p)
    p.add_argument('--new-key-file', required=True)
    p.set_defaults(func=cmd_rotate_key)
    p = sub.add_parser('key-release-api',
                       help='run the attestation-gated key release API (controller)')
    p.add_argument('--config-file', action='append', default=[],
                   help='tclouds.conf with [tclouds_key_manager], [attestation], [api], '
                        '[keystone_authtoken], [oslo_messaging_notifications]')
    p.set_defaults(func=cmd_key_release_api)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
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


if __name__ == '__main__':
    sys.exit(main())
