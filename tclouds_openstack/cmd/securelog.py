"""``tclouds-securelog``: append to, prove from and audit a secure log.

Works against the embedded default store (sqlite) or any configured database, chosen by
``--db-url`` or ``--config-file`` (``[securelog] connection``). Exit codes: 0 success (the
audit found nothing), 1 the audit found damage (the first bad index and its kind on
stdout), 2 unusable input or configuration (one line on stderr, never a traceback).
"""
import argparse
import base64
import json
import os
import sys

from oslo_config import cfg

EXIT_OK, EXIT_DAMAGED, EXIT_ERROR = 0, 1, 2


class InputError(Exception):
    """An argument, file or input line that cannot be used (exit 2)."""


def _b64(data):
    return base64.b64encode(data).decode('ascii')


def _conf(args):
    from tclouds_openstack import conf as tconf
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    # exactly the files given: none by default (then every option has its default)
    conf([], project='tclouds', default_config_files=args.config_file or [],
         default_config_dirs=[])
    if args.db_url:
        conf.set_override('connection', args.db_url, group='securelog')
    if args.state_dir:
        conf.set_override('state_dir', args.state_dir, group='securelog')
        conf.set_override('source_state_dir', args.state_dir, group='securelog')
    return conf


def _store(conf):
    from tclouds_openstack.securelog import store
    return store.SecureLogStore.from_conf(conf)


def cmd_init(args, conf):
    st = _store(conf)
    st.signer  # creates the checkpoint key and writes log.vkey
    st.checkpoint()
    return {'size': st.tree().size, 'auditor_dir': st.auditor_dir,
            'vkey': st.signer.vkey()}


def cmd_append(args, conf):
    from tclouds_openstack.securelog import source
    events = []
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise InputError('stdin line %d is not JSON: %s' % (n, exc))
        if not isinstance(obj, dict):
            raise InputError('stdin line %d must be a JSON object' % n)
        tenant = obj.get('project_id') or obj.get('tenant_id') or ''
        if not isinstance(tenant, str):
            raise InputError('stdin line %d: project_id must be a string' % n)
        events.append((obj, tenant))
    st = _store(conf)
    name = args.source or conf.securelog.source_name or source.default_source_name('cli')
    # The CLI's source lives with the store: its K0 goes to the store's auditor bundle,
    # which "verify" reads (a first-time user sees OK with the default configuration).
    src = source.Source(name, conf.securelog.source_state_dir,
                        conf.securelog.epoch_seconds, conf.securelog.epoch_entries,
                        auditor_dir=st.auditor_dir)
    indexes = []
    for i in range(0, len(events), conf.securelog.batch_size):
        # Sealed and appended in one transaction: one durable point per batch.
        indexes.extend(st.append_events(src, events[i:i + conf.securelog.batch_size]))
    st.checkpoint()
    fresh = [i for i in indexes if i is not None]
    return {'appended': len(fresh), 'first_index': fresh[0] if fresh else None,
            'size': st.tree().size, 'source': name}


def cmd_verify(args, conf):
    from tclouds_openstack.securelog import keyfiles
    st = _store(conf)
    bundle = keyfiles.AuditorBundle.load(args.auditor_dir or st.auditor_dir)
    if not args.auditor_dir:
        # On the log's own host, also the K0s of sources created here before they were
        # moved to the auditors (earlier versions put the CLI's K0 there too).
        bundle.add_source_keys(os.path.join(conf.securelog.source_state_dir, 'auditor'))
    notes = []
    for path in args.checkpoint or []:
        try:
            with open(path, 'rb') as f:
                notes.append(f.read())
        except OSError as exc:
            raise InputError('cannot read checkpoint %s: %s' % (path, exc.strerror))
    from tclouds_openstack.securelog import audit as auditmod
    resume = None
    if args.state and not args.full and os.path.exists(args.state):
        try:
            with open(args.state) as f:
                resume = auditmod.AuditState.loads(f.read(), bundle.log_key)
        except (OSError, ValueError) as exc:
            raise InputError('cannot resume from audit state %s: %s (run with --full)'
                             % (args.state, exc))
    report, problems = st.audit(bundle, notes, resume=resume)
    out = {'ok': report.ok and not problems, 'size': report.size, 'root': report.root.hex(),
           'checkpoints_verified': report.checkpoints_checked,
           'sources': dict(report.sources), 'checkpoint_problems': problems,
           'verified_from': report.start}
    if not report.ok:
        d = report.first_damage
        out['first_bad_index'] = d.index
        out['damage'] = d.kind
        out['detail'] = d.detail
        out['damages_found'] = len(report.damages)
    if report.checkpoints_checked == 0:
        out['ok'] = False
        out['checkpoint_problems'].append('no verified checkpoint: nothing binds the log '
                                          'operator; run "tclouds-securelog checkpoint"')
    if out['ok'] and args.state:
        from tclouds_openstack.securelog import keyfiles as kf
        kf._atomic_write(args.state, report.state.dumps(bundle.log_key).encode())
        out['state'] = args.state
    print(report.summary() if report.ok else 'DAMAGED: first bad index %d (%s): %s'
          % (d.index, d.kind, d.detail), file=sys.stderr)
    return out, (EXIT_OK if out['ok'] else EXIT_DAMAGED)


def _read_file(path, what):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as exc:
        raise InputError('cannot read %s %s: %s' % (what, path, exc.strerror))


def cmd_verify_report(args, conf):
    """Offline: the report file and the log's verifier key only, no store, no network."""
    from tclouds_openstack.securelog import checkpoint as cpmod
    from tclouds_openstack.securelog import report
    key = args.public_key
    if os.path.isfile(key):
        key = _read_file(key, 'public key').decode('utf-8', 'replace')
    try:
        verifier = cpmod.NoteVerifier.from_vkey(key)
    except cpmod.CheckpointError as exc:
        raise InputError('--public-key is not a C2SP verifier key (name+id+key, the log.vkey '
                         'of the auditor bundle): %s' % exc)
    text = _read_file(args.report, 'report')
    out = {'ok': False, 'report': args.report}
    try:
        previous = None
        if args.previous:
            try:
                previous = report.read_checkpoint(_read_file(args.previous, 'previous'),
                                                  verifier)
            except report.Finding as exc:
                raise report.Finding(exc.line, exc.check, 'the earlier report or checkpoint '
                                     '%s: %s' % (args.previous, exc.detail))
        verified = report.verify(text, verifier, project=args.project, previous=previous)
    except report.Finding as exc:
        out.update(first_bad_line=exc.line, check=exc.check, detail=exc.detail)
        print('DAMAGED: line %d (%s): %s' % (exc.line, exc.check, exc.detail),
              file=sys.stderr)
        return out, EXIT_DAMAGED
    m = verified.manifest
    out.update(ok=True, project_id=m.project, lines=len(verified.lines), tree_size=m.size,
               root=m.root.hex(), origin=m.origin, window=[m.window_from, m.window_to],
               consistent_with=previous.size if previous is not None else None)
    print(verified.summary(), file=sys.stderr)
    return out, EXIT_OK


def cmd_enroll_source(args, conf):
    from tclouds_openstack.securelog import keyfiles
    directory = keyfiles.source_keys_dir(conf.securelog.state_dir,
                                         conf.securelog.source_keys_dir)
    if args.source and len(args.k0_file) != 1:
        raise InputError('--source names one source: give exactly one K0 file')
    enrolled, unchanged = [], []
    for path in args.k0_file:
        name = args.source or keyfiles.source_name_of_k0_file(path)
        if not name:
            raise InputError('%s is not named source-<name>.k0: give the name with --source'
                             % path)
        k0 = keyfiles.read_k0(path)
        if keyfiles.enroll_source(directory, name, k0, replace=args.replace):
            enrolled.append(name)
        else:
            unchanged.append(name)
    return {'enrolled': enrolled, 'already_enrolled': unchanged,
            'source_keys_dir': directory}


def cmd_evidence(args, conf):
    st = _store(conf)
    rows = st.evidence(kind=args.kind, source=args.source, marker=args.marker,
                       limit=args.limit)
    return {'evidence': [{'id': r.id, 'kind': r.kind, 'source': r.source, 'seq': r.seq,
                          'received_ns': r.received_ns, 'reason': r.reason,
                          'stored_index': r.stored_index,
                          'released_index': r.released_index, 'entry': _b64(r.entry)}
                         for r in rows]}


def cmd_prove_inclusion(args, conf):
    from tclouds_openstack.securelog import merkle
    st = _store(conf)
    leaf, proof, root = st.inclusion_proof(args.index, args.size)
    size = args.size if args.size is not None else st.tree().size
    merkle.verify_inclusion(leaf, args.index, size, proof, root)
    return {'index': args.index, 'tree_size': size, 'leaf_hash': _b64(leaf),
            'proof': [_b64(p) for p in proof], 'root': _b64(root)}


def cmd_prove_consistency(args, conf):
    from tclouds_openstack.securelog import merkle
    st = _store(conf)
    size2 = args.size2 if args.size2 is not None else st.tree().size
    proof, root1, root2 = st.consistency_proof(args.size1, size2)
    merkle.verify_consistency(args.size1, size2, proof, root1, root2)
    return {'size1': args.size1, 'size2': size2, 'root1': _b64(root1), 'root2': _b64(root2),
            'proof': [_b64(p) for p in proof]}


def cmd_show(args, conf):
    st = _store(conf)
    if args.index is not None:
        from tclouds_openstack.securelog import api
        return api.record_view(st.get(args.index))
    note = st.checkpoint_note()
    return {'size': st.size(), 'checkpoint': note.decode('utf-8')}


def cmd_checkpoint(args, conf):
    st = _store(conf)
    return {'checkpoint': st.checkpoint().decode('utf-8')}


def _nonneg(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not an integer' % text)
    if value < 0:
        raise argparse.ArgumentTypeError('%r must not be negative' % text)
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog='tclouds-securelog', description=__doc__.split('\n')[0])
    parser.add_argument('--config-file', action='append',
                        help='tclouds.conf with a [securelog] section (repeatable)')
    parser.add_argument('--db-url', help='SQLAlchemy URL of the store (overrides the config)')
    parser.add_argument('--state-dir', help='directory of the sealer and signing keys '
                        '(overrides [securelog] state_dir and source_state_dir)')
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('init', help='create the store, the log sealer and the checkpoint key')
    p = sub.add_parser('append', help='seal and append JSON objects, one per stdin line')
    p.add_argument('--source', help='source name to seal under (default cli@<hostname>)')
    p = sub.add_parser('verify', help='audit against the latest checkpoint: from genesis, or '
                       'incrementally from an earlier audit (--state)')
    p.add_argument('--auditor-dir', help='auditor bundle (default <state_dir>/auditor)')
    p.add_argument('--checkpoint', action='append',
                   help='a signed checkpoint obtained elsewhere (repeatable)')
    p.add_argument('--state', help='audit state file: when it exists, verify only the '
                   'records after the audit that wrote it (incremental); after an audit '
                   'that found nothing, the new state is written there (private: it holds '
                   'keys derived from the bundle)')
    p.add_argument('--full', action='store_true',
                   help='audit from genesis even when --state exists')
    p = sub.add_parser('verify-report', help='verify a tenant\'s data-protection report '
                       'offline: every line proved in the log, none changed, deleted, '
                       'reordered or added (exit 0 OK, 1 the first bad line named, 2 '
                       'unusable input)')
    p.add_argument('report', help='the report file (openstack secure-log report --output)')
    p.add_argument('--public-key', required=True,
                   help='the log\'s C2SP verifier key (name+id+key), or a file holding it '
                        '(log.vkey of the auditor bundle)')
    p.add_argument('--project', help='the project the report must be about')
    p.add_argument('--previous', help='an earlier report (or signed checkpoint) of the same '
                   'log: this report\'s checkpoint must extend it (RFC 9162 consistency)')
    p = sub.add_parser('prove-inclusion', help='RFC 9162 inclusion proof of a record')
    p.add_argument('index', type=_nonneg)
    p.add_argument('--size', type=_nonneg, help='tree size (default: current)')
    p = sub.add_parser('prove-consistency', help='RFC 9162 consistency proof')
    p.add_argument('size1', type=_nonneg)
    p.add_argument('size2', type=_nonneg, nargs='?')
    p = sub.add_parser('show', help='a record, or the latest checkpoint')
    p.add_argument('index', type=_nonneg, nargs='?')
    sub.add_parser('checkpoint', help='sign and export a checkpoint now')
    p = sub.add_parser('enroll-source', help='let the ingestion service accept a source: '
                       'enrol its K0 (the source-<name>.k0 file it wrote into its auditor/ '
                       'directory) in [securelog] source_keys_dir')
    p.add_argument('k0_file', nargs='+', help='source-<name>.k0 file(s)')
    p.add_argument('--source', help='the source name, when the file is named otherwise')
    p.add_argument('--replace', action='store_true',
                   help='replace the key of an enrolled source (a new chain under the old '
                        'name; stop the ingestion service first)')
    p = sub.add_parser('evidence', help='entries ingestion refused: conflicting duplicates, '
                       'bad seals, held entries of unknown sources')
    p.add_argument('--kind', choices=['conflict', 'bad-seal', 'unverifiable',
                                      'unknown-source'])
    p.add_argument('--source')
    p.add_argument('--marker', type=_nonneg, default=0, help='first evidence id')
    p.add_argument('--limit', type=_nonneg, default=100)
    return parser


COMMANDS = {'init': cmd_init, 'append': cmd_append, 'verify': cmd_verify,
            'prove-inclusion': cmd_prove_inclusion, 'prove-consistency': cmd_prove_consistency,
            'show': cmd_show, 'checkpoint': cmd_checkpoint,
            'enroll-source': cmd_enroll_source, 'evidence': cmd_evidence,
            'verify-report': cmd_verify_report}


def main(argv=None):
    args = build_parser().parse_args(argv)
    from tclouds_openstack.securelog import keyfiles
    from tclouds_openstack.securelog import merkle
    from tclouds_openstack.securelog import sealing
    from tclouds_openstack.securelog import store
    try:
        conf = _conf(args)
        result = COMMANDS[args.command](args, conf)
    except (InputError, store.StoreError, keyfiles.KeyFileError, merkle.ProofError,
            sealing.SealError, cfg.Error) as exc:
        print('tclouds-securelog %s: %s' % (args.command, exc), file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # database unreachable, permissions: one line, no traceback
        print('tclouds-securelog %s: %s: %s' % (args.command, type(exc).__name__, exc),
              file=sys.stderr)
        return EXIT_ERROR
    code = EXIT_OK
    if isinstance(result, tuple):
        result, code = result
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write('\n')
    return code


if __name__ == '__main__':
    sys.exit(main())


def _service_conf(argv, prog):
    from tclouds_openstack import conf as tconf
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    import oslo_messaging
    oslo_messaging.set_transport_defaults('openstack')
    conf(argv, project='tclouds', prog=prog)
    import logging
    logging.basicConfig(level=logging.INFO,
                        format='%(asctime)s %(process)d %(levelname)s %(name)s %(message)s')
    return conf


def _wait_for_signal(stop):
    import signal
    import threading
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_a: done.set())
    while not done.wait(1.0):
        pass
    stop()


def ingest_main(argv=None):
    """``tclouds-securelog-ingest``: consume sealed entries from the bus into the store."""
    import os
    from tclouds_openstack.securelog import ingest
    conf = _service_conf(sys.argv[1:] if argv is None else argv, 'tclouds-securelog-ingest')
    crash_after = os.environ.get('TCLOUDS_SECURELOG_TEST_CRASH_AFTER_COMMIT')
    remaining = [int(crash_after or 0)]

    def crash_after_commit():
        # Fault injection for the crash tests only: die after the N-th committed batch,
        # before oslo.messaging acknowledges it (the worst moment for duplicates).
        remaining[0] -= 1
        if remaining[0] <= 0:
            os._exit(137)
    after_commit = crash_after_commit if crash_after else None
    service = ingest.IngestService(conf, _store(conf), after_commit=after_commit)
    service.start()
    _wait_for_signal(service.stop)
    return 0


def api_main(argv=None):
    """``tclouds-securelog-api``: the REST API (reads the store; appends go via the bus).

    The application uwsgi serves (tclouds_openstack.wsgi.securelog_api), standalone.
    """
    from tclouds_openstack.common import wsgi
    from tclouds_openstack.wsgi import securelog_api
    conf = _service_conf(sys.argv[1:] if argv is None else argv, securelog_api.PROG)
    app = securelog_api.build(conf)
    wsgi.serve(app, conf.securelog.api_host, conf.securelog.api_port, conf)
    return 0
