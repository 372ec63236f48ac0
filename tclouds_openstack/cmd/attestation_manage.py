"""``tclouds-attestation-manage``: operator commands of the attestation service's database.

``db sync`` upgrades the schema to this release (as ``nova-manage db sync`` does); run it
once per upgrade before starting ``tclouds-attestation-api`` and
``tclouds-attestation-worker``, which refuse to start on an outdated schema rather than
race each other to create it. ``db version`` prints the current and required revisions.
Exit codes: 0 done (or schema current), 1 schema not current, 2 database unreachable.
"""
import sys

from oslo_config import cfg
from oslo_log import log as logging

from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack import conf as tconf


def _db_sync(store):
    store.migrate()
    current, head = store.schema_revisions()
    print('attestation schema at revision %s' % current)
    return 0 if current == head else 1


def _db_version(store):
    current, head = store.schema_revisions()
    print('current %s, required %s' % (current or '(none)', head))
    return 0 if current == head else 1


COMMANDS = {'sync': _db_sync, 'version': _db_version}


def _add_parsers(subparsers):
    db = subparsers.add_parser('db', help='attestation database schema')
    db.add_argument('action', choices=sorted(COMMANDS),
                    help='sync: upgrade to this release; version: show the revisions')


def main(argv=None):
    conf = tconf.CONF
    logging.register_options(conf)
    conf.register_cli_opt(cfg.SubCommandOpt('category', handler=_add_parsers))
    conf(sys.argv[1:] if argv is None else argv, project='tclouds',
         prog='tclouds-attestation-manage')
    logging.setup(conf, 'tclouds-attestation-manage')
    store = store_mod.Store(conf.attestation.connection)
    try:
        return COMMANDS[conf.category.action](store)
    except (store_mod.DatabaseUnavailable, store_mod.SchemaError) as e:
        print('tclouds-attestation-manage: %s' % e, file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
