"""``openstack secure-log ...``: OSC commands over the secure log API client.

Proof commands check what the server sends before printing it: an inclusion or
consistency proof is verified against the signed checkpoint, whose signature is checked
when ``--vkey`` (the log's C2SP verifier key) is given; so is a project's report
(``openstack secure-log report``), which is written to a file for offline verification
(``tclouds-securelog verify-report``). Endpoint: the Keystone catalog (service type
``secure-log``) or ``OS_SECURE_LOG_ENDPOINT``.
"""
import base64
import json

from osc_lib.command import command
from osc_lib import exceptions
from osc_lib import utils

from tclouds_openstack.common import client as common_client
from tclouds_openstack.osc.v1 import trust as trust_commands
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import client as client_mod
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import report as reportmod

RECORD_COLUMNS = ('index', 'source', 'seq', 'event_type', 'tenant', 'time_ns', 'encrypted')


def _client(app):
    manager = app.client_manager
    return client_mod.SecureLogClient(
        manager.session, endpoint_override=utils.env('OS_SECURE_LOG_ENDPOINT') or None,
        interface=manager.interface, region_name=manager.region_name)


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (common_client.ClientError, common_client.ServiceUnavailable) as e:
        raise exceptions.CommandError(str(e))


def _show(item):
    keys = sorted(item)
    return keys, tuple(json.dumps(item[k]) if isinstance(item[k], (dict, list))
                       else item[k] for k in keys)


def _nonneg(text):
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _trusted_checkpoint(cli, vkey, size=None):
    """The checkpoint, signature-checked when a verifier key is given."""
    cp = _call(cli.checkpoint, size)
    if vkey:
        try:
            parsed, _w = cpmod.open_checkpoint(cp['checkpoint'],
                                               cpmod.NoteVerifier.from_vkey(vkey))
        except cpmod.CheckpointError as e:
            raise exceptions.CommandError('checkpoint rejected: %s' % e)
        return parsed.size, parsed.root
    return cp['tree_size'], base64.b64decode(cp['root_hash'])


def _vkey_arg(parser):
    parser.add_argument('--vkey', help='the log\'s C2SP verifier key (name+id+key) to check '
                        'the checkpoint signature with')


class ShowCheckpoint(command.ShowOne):
    """Show the latest signed checkpoint (C2SP tlog-checkpoint) of the secure log."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--size', type=_nonneg, help='the checkpoint of this tree size')
        _vkey_arg(parser)
        return parser

    def take_action(self, parsed_args):
        cli = _client(self.app)
        cp = _call(cli.checkpoint, parsed_args.size)
        if parsed_args.vkey:
            _trusted_checkpoint(cli, parsed_args.vkey, cp['tree_size'])
            cp['signature'] = 'verified'
        return _show(cp)


class ListRecords(command.Lister):
    """List log records (auditors see all projects, members only their own)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--marker', type=_nonneg, help='first log index to list')
        parser.add_argument('--limit', type=int, default=50, help='records to list (<= 1000)')
        parser.add_argument('--source', help='only this source (e.g. nova-compute@host1)')
        parser.add_argument('--event-type', help='only this event type')
        parser.add_argument('--project', help='only this project\'s records')
        return parser

    def take_action(self, parsed_args):
        rows = _call(_client(self.app).list_records, parsed_args.marker, parsed_args.limit,
                     parsed_args.source, parsed_args.event_type, parsed_args.project)
        return RECORD_COLUMNS, [tuple(r.get(c) for c in RECORD_COLUMNS) for r in rows]


class ShowRecord(command.ShowOne):
    """Show one record: its source, sequence, epochs, payload and leaf hash."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('index', type=_nonneg, help='log index')
        return parser

    def take_action(self, parsed_args):
        return _show(_call(_client(self.app).show_record, parsed_args.index))


class AppendEvent(command.ShowOne):
    """Append an event (sealed by the secure log API service as its own source)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('event_type', help='event type, e.g. audit.manual.note')
        parser.add_argument('--payload', default='{}', help='JSON payload (default {})')
        return parser

    def take_action(self, parsed_args):
        try:
            payload = json.loads(parsed_args.payload)
        except ValueError as e:
            raise exceptions.CommandError('--payload is not JSON: %s' % e)
        return _show(_call(_client(self.app).append, parsed_args.event_type, payload))


class ProveInclusion(command.ShowOne):
    """Get an RFC 9162 inclusion proof of a record and verify it against the checkpoint."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('index', type=_nonneg, help='log index of the record')
        _vkey_arg(parser)
        return parser

    def take_action(self, parsed_args):
        cli = _client(self.app)
        size, root = _trusted_checkpoint(cli, parsed_args.vkey)
        proof = _call(cli.inclusion_proof, parsed_args.index, size)
        try:
            merkle.verify_inclusion(base64.b64decode(proof['leaf_hash']), parsed_args.index,
                                    size, [base64.b64decode(p) for p in proof['proof']], root)
        except merkle.ProofError as e:
            raise exceptions.CommandError('inclusion proof does NOT verify: %s' % e)
        proof['verified'] = True
        return _show(proof)


class ProveConsistency(command.ShowOne):
    """Get an RFC 9162 consistency proof from an older tree size to the checkpoint."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('first', type=_nonneg, help='older tree size')
        parser.add_argument('--first-root', help='base64 root you recorded for that size '
                            '(checked; default: the server\'s value)')
        _vkey_arg(parser)
        return parser

    def take_action(self, parsed_args):
        cli = _client(self.app)
        size, root = _trusted_checkpoint(cli, parsed_args.vkey)
        proof = _call(cli.consistency_proof, parsed_args.first, size)
        first_root = base64.b64decode(parsed_args.first_root or proof['first_root_hash'])
        try:
            merkle.verify_consistency(parsed_args.first, size,
                                      [base64.b64decode(p) for p in proof['proof']],
                                      first_root, root)
        except merkle.ProofError as e:
            raise exceptions.CommandError('consistency proof does NOT verify: %s' % e)
        proof['verified'] = True
        return _show(proof)


class ShowReport(command.ShowOne):
    """Get a project's data-protection report and write it to a file.

    For each of the project's servers, volumes and objects: where it lived (host
    pseudonym, jurisdiction, trust verdicts), which hosts received its keys, every refusal
    and integrity fault; each line with an inclusion proof against a signed checkpoint.
    Verify the file offline with ``tclouds-securelog verify-report FILE --public-key KEY``.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--project', metavar='<project>',
                            help='Project (name or ID); default: the token\'s project')
        parser.add_argument('--project-domain', metavar='<project-domain>',
                            help='Domain the project belongs to (name or ID)')
        parser.add_argument('--from', dest='start', metavar='<time>',
                            help='Window start, ISO 8601 (e.g. 2026-12-05T10:00:00Z); '
                                 'default: the log\'s beginning')
        parser.add_argument('--to', dest='end', metavar='<time>',
                            help='Window end (exclusive), ISO 8601; default: the latest '
                                 'signed checkpoint')
        parser.add_argument('--output', metavar='<file>', required=True,
                            help='Where to write the report (JSON Lines)')
        parser.add_argument('--previous', metavar='<file>',
                            help='An earlier report (or signed checkpoint) of this log: the '
                                 'new report then proves the log only grew since (checked '
                                 'with --vkey, and offline with verify-report --previous)')
        _vkey_arg(parser)
        return parser

    def take_action(self, parsed_args):
        project_id = parsed_args.project and trust_commands._project_id(
            self.app, parsed_args.project, parsed_args.project_domain)
        if not project_id:
            auth_ref = getattr(self.app.client_manager, 'auth_ref', None)
            project_id = getattr(auth_ref, 'project_id', None)
        if not project_id:
            raise exceptions.CommandError('give --project: the token is not scoped to one')
        previous_text = previous = None
        if parsed_args.previous:
            previous_text = _read(parsed_args.previous)
            try:
                previous = reportmod.peek_checkpoint(previous_text)
            except reportmod.Finding as e:
                raise exceptions.CommandError('--previous %s: %s'
                                              % (parsed_args.previous, e.detail))
        answer = _call(_client(self.app).report, project_id, parsed_args.start,
                       parsed_args.end, previous.size if previous is not None else None)
        text = answer['report'].encode('utf-8')
        verified = 'not checked (give --vkey)'
        if parsed_args.vkey:
            try:
                verifier = cpmod.NoteVerifier.from_vkey(parsed_args.vkey)
                if previous_text is not None:
                    previous = reportmod.read_checkpoint(previous_text, verifier)
                reportmod.verify(text, verifier, project=project_id, previous=previous)
            except cpmod.CheckpointError as e:
                raise exceptions.CommandError('--vkey: %s' % e)
            except reportmod.Finding as e:
                raise exceptions.CommandError('the report does NOT verify: %s' % e)
            verified = True
        try:
            with open(parsed_args.output, 'wb') as f:
                f.write(text)
        except OSError as e:
            raise exceptions.CommandError('cannot write %s: %s'
                                          % (parsed_args.output, e.strerror))
        return _show({'project_id': project_id, 'lines': answer['lines'],
                      'tree_size': answer['tree_size'], 'from': parsed_args.start,
                      'to': parsed_args.end, 'output': parsed_args.output,
                      'verified': verified})


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as e:
        raise exceptions.CommandError('cannot read %s: %s' % (path, e.strerror))
