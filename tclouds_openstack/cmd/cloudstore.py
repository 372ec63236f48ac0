"""tclouds-cloudstore: repair and check the clouds behind the cloudstore Swift middleware.

``tclouds-cloudstore repair --proxy-conf /etc/swift/proxy-server.conf`` reads the
``[filter:cloudstore]`` section (the same options the middleware validates), lists every
data unit any cloud holds, and for each one rewrites the value objects and metadata that
are missing, stale or corrupted on some cloud (rebuilt from f + 1 good ones and checked
against the signed digests, so no writer key is needed) and deletes older versions.
``check`` only reports. One JSON line per data unit; exit status 1 if any could not be
repaired (or, for ``check``, if any cloud is faulty).
"""
import argparse
import concurrent.futures
import configparser
import json
import sys

from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import protocol
from tclouds_openstack.cloudstore import settings as settings_mod


def _settings(path, section):
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(path):
        raise SystemExit('tclouds-cloudstore: cannot read %s' % path)
    if not parser.has_section(section):
        raise SystemExit('tclouds-cloudstore: %s has no [%s] section' % (path, section))
    try:
        return settings_mod.Settings(dict(parser.items(section)))
    except ValueError as exc:
        raise SystemExit('tclouds-cloudstore: %s' % exc)


def _check(depsky, unit):
    try:
        result = depsky.check(unit)
    except errors.CloudStoreError as exc:
        return {'data_unit': unit, 'error': str(exc)}, False
    faults = {name: str(fault) for name, fault in result.faults.items()}
    return {'data_unit': unit, 'version': result.version, 'faults': faults}, \
        not faults


def _repair(depsky, unit, collect_garbage):
    try:
        result = depsky.repair(unit, collect_garbage=collect_garbage)
    except errors.CloudStoreError as exc:
        return {'data_unit': unit, 'error': str(exc)}, False
    return {'data_unit': unit, 'version': result.version, 'repaired': result.repaired,
            'failed': result.failed}, not result.failed


def main(argv=None):
    parser = argparse.ArgumentParser(prog='tclouds-cloudstore', description=__doc__.split(
        '\n\n')[0])
    parser.add_argument('command', choices=['repair', 'check'])
    parser.add_argument('--proxy-conf', default='/etc/swift/proxy-server.conf',
                        help='Swift proxy configuration with the cloudstore filter')
    parser.add_argument('--filter', default='cloudstore',
                        help='name of the filter section (default: cloudstore)')
    parser.add_argument('--data-unit', action='append', default=[],
                        help='only this data unit (repeatable); default: all of them')
    parser.add_argument('--keep-old-versions', action='store_true',
                        help='repair only; do not delete value objects of older versions')
    args = parser.parse_args(argv)
    settings = _settings(args.proxy_conf, 'filter:' + args.filter)
    try:
        clouds = settings.build_clouds()
    except ValueError as exc:
        raise SystemExit('tclouds-cloudstore: %s' % exc)
    ok = True
    with concurrent.futures.ThreadPoolExecutor(settings.workers) as pool:
        depsky = protocol.DepSkyCA(clouds, settings.f, settings.public_key, executor=pool,
                                   timeout=settings.timeout)
        units = args.data_unit
        if not units:
            units, failures = depsky.list_data_units()
            for name, reason in sorted(failures.items()):
                print(json.dumps({'cloud': name, 'error': 'cannot list: %s' % reason}))
        by_name = {cloud.name: cloud for cloud in clouds}
        for unit in units:
            try:
                # An object of a restricted project lives on the clouds of its countries.
                names = depsky.clouds_of(unit)
                unknown = [name for name in names if name not in by_name]
                if unknown:
                    raise errors.CloudStoreError('stored on cloud(s) %s, which %s does not '
                                                 'configure' % (', '.join(unknown),
                                                                args.proxy_conf))
                placed = depsky.subset([by_name[name] for name in names])
            except errors.CloudStoreError as exc:
                print(json.dumps({'data_unit': unit, 'error': str(exc)}, sort_keys=True))
                ok = False
                continue
            if args.command == 'check':
                report, good = _check(placed, unit)
            else:
                report, good = _repair(placed, unit, not args.keep_old_versions)
            ok = ok and good
            print(json.dumps(report, sort_keys=True))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
