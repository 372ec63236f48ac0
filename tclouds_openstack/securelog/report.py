"""A tenant's data-protection report from the secure log, and its offline verification.

For one project and a time window, the report says what the log records about the
project's servers, volumes and objects: where each lived (compute host, the host's
jurisdiction and trust verdicts over time; the volume's backend; the clouds of each object
version and where each fragment went), which hosts received its keys and when, every
refusal (key release, scheduling, object write) and every integrity fault detected
(protected volumes, faulty clouds, log entries ingestion refused). Pure: the caller (the
secure log API) supplies the records, the signed checkpoint, the proofs and the signer.

**Format** (JSON Lines, UTF-8; one JSON object per text line, keys sorted): line 1 is the
header (project, window, the signed C2SP checkpoint the report is proved against, the
signed manifest, optionally an RFC 9162 consistency proof from an earlier checkpoint);
every further line is one log record interpreted for the tenant, with its leaf index, leaf
hash and RFC 9162 inclusion proof against the checkpoint. The **manifest** is a C2SP
signed note signed with the log's checkpoint key::

    tclouds-securelog report v1
    project <project id>
    window <from or -> <to or ->
    generated <time>
    log <origin>
    checkpoint <tree size> <base64 root>
    lines <count>
    <leaf index> <base64 SHA-256 of the line's canonical JSON without "proof">
    ...

so a changed, deleted, reordered or inserted line, and a header that does not match, are
detected offline with the log's public key alone (:func:`verify`). A manifest's second
line is never a decimal number, so it never parses as a checkpoint (tlog-checkpoint line
2), and a checkpoint never passes as a manifest (line 1): one key signs both, unambiguously.

**What a tenant sees.** Host names are replaced by Nova's per-project ``hostId``
(``sha224(project_id + host)``, what ``openstack server show`` prints): stable across
reports of one project, so a host can be followed over time, unlinkable between
projects, and matching Nova's own view; host names inside reasons are replaced the same
way. Verdicts show the status and its time, not the appraisal's reasons (they describe
the operator's software), as the attestation API's tenant view does. Host-level records
(verdicts, the trust reactor's actions, a host's jurisdiction) appear only while the
project had a server on that host or the host held one of its volume keys, plus the
latest of them before the project's resource arrived (``"context": true`` marks lines
from before the window). Records whose payload is encrypted for the project (``[securelog]
tenant_keys``) cannot be interpreted by the log service: they appear as ``sealed`` lines
carrying the ciphertext, which the tenant decrypts (:mod:`.confidential`). Events appended
through the API (``POST /v1/records``) are claims by their submitter and only ever appear
as ``note`` lines of the submitter's own project, never as facts.
"""
import ast
import base64
import binascii
import collections
import datetime
import hashlib
import json
import re

from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import sealing

FORMAT = 'tclouds-securelog-report/v1'
MANIFEST_HEADER = 'tclouds-securelog report v1'
HOST_NAMES = ('pseudonym: Nova\'s per-project hostId, sha224(project_id + host) hex; host '
              'names in reasons replaced the same way')
SEALED_PAYLOADS = ('AES-256-GCM with the project\'s secure log key ([securelog] '
                   'tenant_keys): nonce = first 12 bytes of the ciphertext, AAD = '
                   '"tclouds-securelog/v1 tenant " + project id')
# Event types the report interprets (the adapter selects records by these prefixes and
# by the project's own tenant): Nova (versioned and legacy), Cinder, scheduling failures,
# attestation verdicts, the trust reactor, key release, protected volumes, cloud-of-clouds
# storage and the secure log's own ingestion alarms.
EVENT_PREFIXES = ('instance.', 'compute.instance.', 'compute_task.', 'scheduler.',
                  'volume.', 'attestation.host.', 'trust.', 'keymgr.key.',
                  'blockstore.integrity.', 'cloudstore.', 'securelog.entry.',
                  'securelog.source.')
_PROJECT_ID = re.compile(r'^[A-Za-z0-9_-]{1,64}$')
_MAX_TEXT = 1000

SERVER, VOLUME, OBJECT, HOST, LOG_ENTRY = 'server', 'volume', 'object', 'host', 'log-entry'
PLACEMENT, VERDICT, HOST_ACTION, TRUST_ACTION, KEY = (
    'placement', 'verdict', 'host-action', 'trust-action', 'key')
REFUSAL, INTEGRITY, SEALED, NOTE = 'refusal', 'integrity', 'sealed', 'note'

# One stored record as the adapter hands it over (``data``: the encoded record, the leaf).
Row = collections.namedtuple('Row', 'index leaf_hash tenant time_ns data')
# What one record says, before it is rendered for a project.
Fact = collections.namedtuple('Fact', 'kind rtype rid project host fields')


class ReportError(Exception):
    """A report cannot be built or read (bad parameters, unusable input)."""


# ---------------------------------------------------------------------------- time
def parse_time(text, field):
    """ISO 8601 (``2026-12-05T10:00:00Z``; no zone = UTC) -> ns since the epoch."""
    try:
        value = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ReportError('%s: %r is not an ISO 8601 time (e.g. 2026-12-05T10:00:00Z)'
                          % (field, str(text)[:40]))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return int(value.timestamp()) * 10 ** 9 + value.microsecond * 1000


def format_time(ns):
    if ns is None:
        return None
    seconds, rest = divmod(int(ns), 10 ** 9)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.replace(microsecond=rest // 1000).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def check_project(project_id):
    if not isinstance(project_id, str) or not _PROJECT_ID.match(project_id):
        raise ReportError('project_id: %r is not a project ID (1-64 of A-Z a-z 0-9 _ -)'
                          % str(project_id)[:70])
    return project_id


def host_pseudonym(project_id, host):
    """Nova's ``hostId`` of ``host`` for ``project_id`` (nova.utils.generate_hostid)."""
    return hashlib.sha224((project_id + host).encode('utf-8')).hexdigest()


# ---------------------------------------------------------------------------- facts
def _dict(value):
    return value if isinstance(value, dict) else {}


def _str(value):
    return value if isinstance(value, str) and value else None


def _text(value):
    """A reason as text, from a string or an exception serialised by Nova or Cinder."""
    if isinstance(value, str) and value.startswith('{') and len(value) < 10000:
        # Nova's legacy notifications carry an exception as the repr of its attributes
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            return _text(parsed)
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, dict):
        data = value.get('nova_object.data')
        if isinstance(data, dict):
            return _text(data)
        for key in ('exception_message', 'message', 'msg', 'reason'):
            if isinstance(value.get(key), str):
                return value[key][:_MAX_TEXT]
        kwargs = value.get('kwargs')
        if isinstance(kwargs, dict) and isinstance(kwargs.get('reason'), str):
            return kwargs['reason'][:_MAX_TEXT]
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str)[:_MAX_TEXT]


def _nova_data(payload):
    return _dict(_dict(payload).get('nova_object.data'))


def _after(event_type, prefix):
    return event_type[len(prefix):]


def _instance(event_type, payload, context):
    data = _nova_data(payload)
    if event_type.startswith('instance.') and _str(data.get('uuid')):
        server, project, host = data['uuid'], data.get('tenant_id'), data.get('host')
        action, state = _after(event_type, 'instance.'), data.get('state')
    elif event_type.startswith('compute.instance.') and _str(payload.get('instance_id')):
        server, project, host = payload['instance_id'], payload.get('tenant_id'), \
            payload.get('host')
        action, state = _after(event_type, 'compute.instance.'), payload.get('state')
    else:
        return None
    return Fact(PLACEMENT, SERVER, server, _str(project) or context.get('project_id'),
                _str(host), {'action': action, 'state': _str(state)})


def _volume(event_type, payload, context):
    if not _str(payload.get('volume_id')):
        return None
    backend, storage_host = None, None
    where = _str(payload.get('host'))
    if where:
        # Cinder's "host@backend#pool": the backend is the operator's label, the host a name
        storage_host, _sep, backend = where.partition('@')
        backend = backend or None
    return Fact(PLACEMENT, VOLUME, payload['volume_id'],
                _str(payload.get('tenant_id')) or context.get('project_id'), None,
                {'action': _after(event_type, 'volume.'), 'backend': backend,
                 'storage_host': storage_host, 'status': _str(payload.get('status'))})


def _scheduling(event_type, payload, context, priority):
    """Nova's compute_task.* and Cinder's scheduler.* failure notifications."""
    data = _nova_data(payload) or payload
    failed = (event_type.endswith('.error') or str(priority).upper() == 'ERROR'
              or data.get('state') == 'error')
    if not failed:
        return None
    spec = _dict(data.get('request_spec'))
    spec_data = _nova_data(spec) or spec
    props = (_dict(spec_data.get('volume_properties'))
             or _dict(spec_data.get('instance_properties'))
             or _dict(data.get('volume_properties')) or _dict(data.get('instance_properties')))
    project = (_str(spec_data.get('project_id')) or _str(props.get('project_id'))
               or context.get('project_id'))
    if _str(data.get('volume_id')):
        rtype, rid = VOLUME, data['volume_id']
    else:
        rtype = SERVER
        rid = _str(data.get('instance_uuid')) or _str(data.get('instance_id')) or _str(
            spec_data.get('instance_uuid'))
    if rid is None:
        return None
    return Fact(REFUSAL, rtype, rid, project, None,
                {'refused': 'scheduling', 'reason': _text(data.get('reason')),
                 'operation': _str(data.get('method')) or event_type})


def _attestation(event_type, payload, context):
    host = _str(payload.get('host'))
    if host is None:
        return None
    status = _str(payload.get('status')) or _after(event_type, 'attestation.host.')
    return Fact(VERDICT, HOST, None, None, host,
                {'status': status, 'verified_at': _str(payload.get('verified_at'))})


def _trust(event_type, payload, context):
    host = _str(payload.get('host'))
    if host is None:
        return None
    action = _after(event_type, 'trust.')
    if action.startswith(('host.', 'instance.')):
        action = action.split('.', 1)[1]
    fields = {'action': action, 'status': _str(payload.get('status')),
              'jurisdiction': _str(payload.get('jurisdiction'))}
    server = _str(payload.get('instance_id'))
    if event_type.startswith('trust.instance.') and server:
        return Fact(TRUST_ACTION, SERVER, server, _str(payload.get('project_id')), host,
                    fields)
    if server:
        fields['server'] = server
    return Fact(HOST_ACTION, HOST, None, None, host, fields)


def _key(event_type, payload, context):
    volume = _str(payload.get('volume_id'))
    if volume is None:
        return None
    released = event_type == 'keymgr.key.released'
    fields = {'released': released, 'what': _str(payload.get('subject_type')) or 'key',
              'verdict': _str(payload.get('verdict_status'))}
    if not released:
        fields.update(refused='key release', reason=_text(payload.get('reason')))
    return Fact(KEY if released else REFUSAL, VOLUME, volume,
                _str(payload.get('project_id')), _str(payload.get('host')), fields)


def _blockstore(event_type, payload, context):
    volume = _str(payload.get('volume_id')) or _str(payload.get('volume'))
    if volume is None:
        return None
    return Fact(INTEGRITY, VOLUME, volume, _str(payload.get('project_id')),
                _str(payload.get('host')),
                {'fault': 'volume integrity', 'check': _str(payload.get('check')),
                 'operation': _str(payload.get('operation')),
                 'sector': payload.get('sector') if isinstance(payload.get('sector'), int)
                 else None, 'reason': _text(payload.get('reason'))})


def _object_name(payload):
    container, obj = _str(payload.get('container')), _str(payload.get('object'))
    return '%s/%s' % (container, obj) if container and obj else None


def _cloudstore(event_type, payload, context):
    project = _str(payload.get('project_id'))
    if event_type == 'cloudstore.object.placed':
        name = _object_name(payload)
        if name is None:
            return None
        fragments = [{'fragment': f.get('fragment'), 'cloud': _str(f.get('cloud')),
                      'country': _str(f.get('country')),
                      'acknowledged': f.get('acknowledged') is True}
                     for f in payload.get('fragments') or () if isinstance(f, dict)]
        allowed = payload.get('allowed_jurisdictions')
        return Fact(PLACEMENT, OBJECT, name, project or context.get('project_id'), None, {
            'action': 'placed', 'version': payload.get('version'),
            'data_unit': _str(payload.get('data_unit')), 'fragments': fragments,
            'allowed_jurisdictions': allowed if isinstance(allowed, list) else None})
    if event_type == 'cloudstore.fault':
        return Fact(INTEGRITY, OBJECT, _object_name(payload), project, None, {
            'fault': 'faulty cloud', 'cloud': _str(payload.get('cloud')),
            'kind': _str(payload.get('kind')), 'data_unit': _str(payload.get('data_unit')),
            'reason': _text(payload.get('reason'))})
    if event_type == 'cloudstore.write.refused':
        name = _object_name(payload)
        if name is None:
            return None
        return Fact(REFUSAL, OBJECT, name, project or context.get('project_id'), None,
                    {'refused': 'object write', 'reason': _text(payload.get('reason'))})
    return None


def _log_alarm(event_type, payload, context):
    stored = payload.get('stored_index')
    return Fact(INTEGRITY, LOG_ENTRY, None, _str(payload.get('tenant')), None, {
        'fault': 'secure log entry refused', 'kind': _str(payload.get('kind')),
        'source': _str(payload.get('source')), 'seq': payload.get('seq'),
        'stored_index': stored if isinstance(stored, int) else None,
        'reason': _text(payload.get('reason'))})


def _unwrap(event):
    """(event type, payload, context, publisher, priority) of a sealed event.

    Notifications sealed by the driver wrap their payload; events appended by a source
    living with the store (the CLI) are the payload themselves.
    """
    if 'payload' in event and ('context' in event or 'publisher_id' in event):
        return (event.get('event_type') or '', _dict(event.get('payload')),
                _dict(event.get('context')), event.get('publisher_id') or '',
                event.get('priority') or '')
    return event.get('event_type') or '', event, {}, '', ''


def classify(event, tenant=''):
    """The :class:`Fact` one decoded event states, or None (not a report matter)."""
    if not isinstance(event, dict):
        return None
    event_type, payload, context, publisher, priority = _unwrap(event)
    if not isinstance(event_type, str):
        return None
    if isinstance(publisher, str) and publisher.startswith('user:'):
        # appended through the API: a claim by that user, never a fact about a resource
        return Fact(NOTE, None, None, tenant or None, None,
                    {'submitted_by': publisher})
    context = {'project_id': _str(context.get('project_id'))}
    if event_type.startswith(('instance.', 'compute.instance.')):
        return _instance(event_type, payload, context)
    if event_type.startswith(('compute_task.', 'scheduler.')):
        return _scheduling(event_type, payload, context, priority)
    if event_type.startswith('volume.'):
        return _volume(event_type, payload, context)
    if event_type.startswith('attestation.host.'):
        return _attestation(event_type, payload, context)
    if event_type.startswith('trust.'):
        return _trust(event_type, payload, context)
    if event_type in ('keymgr.key.released', 'keymgr.key.refused'):
        return _key(event_type, payload, context)
    if event_type == 'blockstore.integrity.failed':
        return _blockstore(event_type, payload, context)
    if event_type.startswith('cloudstore.'):
        return _cloudstore(event_type, payload, context)
    if event_type.startswith(('securelog.entry.', 'securelog.source.')):
        return _log_alarm(event_type, payload, context)
    return None


# ---------------------------------------------------------------------------- selection
class _Selected(object):
    __slots__ = ('row', 'entry', 'event_type', 'fact')

    def __init__(self, row, entry, event_type, fact):
        self.row, self.entry, self.event_type, self.fact = row, entry, event_type, fact


class _Selection(object):
    """Which records concern ``project``: one pass over the log in index order.

    A resource belongs to the first project a record names for it (Nova's and Cinder's
    notifications carry the owner); records that name no project (a fault of a data unit,
    a key release) are joined through the resource. Host-level records count while one
    of the project's servers runs on the host or the host holds one of its volume keys.
    """

    def __init__(self, project, from_ns, to_ns):
        self.project = project
        self.from_ns, self.to_ns = from_ns, to_ns
        self.owner = {}             # (type, id) -> project, for every project
        self.servers = {}           # the project's live servers -> host or None
        self.volumes = {}           # the project's live volumes -> backend
        self.key_hosts = {}         # the project's volumes -> host holding the key
        self.units = {}             # data unit -> object name (every project)
        self.known_hosts = set()    # every host name met (replaced in reasons)
        self.chosen = {}            # index -> _Selected
        self.last_host_record = {}  # host -> [latest verdict, latest host action]
        self.latest = {}            # (type, id) -> latest placement before the window
        self.own_indexes = set()    # the project's records (its tenant's, its lines)
        self.refusals = {}          # (type, id) -> reason of its last scheduling refusal
        self.in_window = False

    def hosts_now(self):
        return ({h for h in self.servers.values() if h}
                | {h for h in self.key_hosts.values() if h})

    def _take(self, item):
        self.chosen.setdefault(item.row.index, item)

    def _arrive(self, host):
        """The project's resource arrives on ``host``: what was known of it just before."""
        if not self.in_window:
            return          # the window's start takes the context (_enter_window)
        for item in self.last_host_record.get(host, ()):
            if item is not None:
                self._take(item)

    def _mine(self, fact):
        key = (fact.rtype, fact.rid)
        owner = self.owner.get(key)
        if owner is None and fact.project and fact.rid:
            self.owner[key] = owner = fact.project
        return (owner or fact.project) == self.project

    def add(self, row, entry, event_type, fact):
        if fact.host:
            self.known_hosts.add(fact.host)
        if fact.fields.get('storage_host'):
            self.known_hosts.add(fact.fields['storage_host'])
        if fact.rtype == OBJECT and fact.rid and fact.fields.get('data_unit'):
            self.units.setdefault(fact.fields['data_unit'], fact.rid)
        if not self.in_window and row.time_ns >= self.from_ns:
            self._enter_window()
        item = _Selected(row, entry, event_type, fact)
        take = self._decide(item)
        if take:
            self.own_indexes.add(row.index)
            if self.in_window:
                self._take(item)

    def _enter_window(self):
        """Context at the window's start: resources, key holders, their hosts' state."""
        self.in_window = True
        for key, item in self.latest.items():
            if key[1] in self.servers or key[1] in self.volumes or key[0] == OBJECT:
                self._take(item)
        for host in self.hosts_now():
            self._arrive(host)

    def finish(self):
        if not self.in_window:
            self._enter_window()
        return [self.chosen[i] for i in sorted(self.chosen)]

    def _decide(self, item):
        fact, row = item.fact, item.row
        kind = fact.kind
        if kind == SEALED or kind == NOTE:
            return row.tenant == self.project
        if kind in (VERDICT, HOST_ACTION):
            slot = 0 if kind == VERDICT else 1
            records = self.last_host_record.setdefault(fact.host, [None, None])
            records[slot] = item
            return fact.host in self.hosts_now()
        if fact.rtype == LOG_ENTRY:
            stored = fact.fields.get('stored_index')
            return fact.project == self.project or (
                stored is not None and stored in self.own_indexes)
        if fact.rtype == OBJECT and fact.rid is None and fact.fields.get('data_unit'):
            name = self.units.get(fact.fields['data_unit'])
            if name is None:
                return False
            fact = item.fact = fact._replace(rid=name)
        if fact.rid is None or not self._mine(fact):
            return False
        if kind == PLACEMENT:
            return self._placed(item)
        if kind == TRUST_ACTION:
            return True
        if kind == REFUSAL and fact.fields.get('refused') == 'scheduling':
            # Nova notifies one failure twice (legacy and versioned) with one reason
            key, reason = (fact.rtype, fact.rid), fact.fields.get('reason')
            if self.refusals.get(key) == reason:
                return False
            self.refusals[key] = reason
            return True
        if kind == KEY and fact.host:
            self.latest[(KEY, fact.rid)] = item
            if self.key_hosts.get(fact.rid) != fact.host:
                self.key_hosts[fact.rid] = fact.host
                self._arrive(fact.host)
            return True
        return True         # refusals and integrity faults of the project's resources

    def _placed(self, item):
        """A placement record: kept when the resource appears, moves or goes."""
        fact = item.fact
        rid, action = fact.rid, fact.fields.get('action') or ''
        gone = action.startswith('delete.end') or action == 'delete'
        if fact.rtype == SERVER:
            table, where = self.servers, fact.host
        elif fact.rtype == VOLUME:
            table, where = self.volumes, fact.fields.get('backend')
        else:
            # every stored version of an object, and where its fragments went
            self.latest[(OBJECT, rid)] = item
            return True
        if gone:
            known = rid in table
            table.pop(rid, None)
            self.key_hosts.pop(rid, None)
            self.latest.pop((fact.rtype, rid), None)
            self.latest.pop((KEY, rid), None)
            return known
        changed = rid not in table or (where is not None and table[rid] != where)
        if not changed:
            return False
        self.refusals.pop((fact.rtype, rid), None)
        if where is not None or rid not in table:
            table[rid] = where if where is not None else table.get(rid)
        self.latest[(fact.rtype, rid)] = item
        if fact.rtype == SERVER and where:
            self._arrive(where)
        return True


def select(rows, project, from_ns=None, to_ns=None):
    """The records of ``rows`` (:class:`Row`, log order) that concern ``project``."""
    sel = _Selection(project, from_ns or 0, to_ns if to_ns is not None else 2 ** 63)
    for row in rows:
        if to_ns is not None and row.time_ns >= to_ns:
            continue
        if row.tenant == project:
            sel.own_indexes.add(row.index)
        try:
            record = sealing.decode_record(row.data)
            entry = sealing.decode_entry(record.entry)
        except sealing.SealError:
            continue        # damage is the audit's matter; it says nothing about a project
        if entry.flags & sealing.FLAG_ENCRYPTED:
            if entry.tenant != project:
                continue
            fact = Fact(SEALED, None, None, project, None, {})
            event_type = ''
        else:
            try:
                event = json.loads(entry.payload)
            except ValueError:
                continue
            fact = classify(event, entry.tenant)
            if fact is None:
                continue
            event_type = _unwrap(event)[0] if isinstance(event, dict) else ''
        sel.add(row, entry, event_type, fact)
    return sel.finish(), sel.known_hosts


# ---------------------------------------------------------------------------- rendering
class _Redactor(object):
    """Host names -> the project's pseudonyms, in fields and free text."""

    def __init__(self, project, hosts):
        self.project = project
        names = sorted((h for h in hosts if h), key=len, reverse=True)
        self._pattern = re.compile(r'(?<![\w.-])(%s)(?![\w-])' % '|'.join(
            re.escape(h) for h in names)) if names else None

    def host(self, name):
        return host_pseudonym(self.project, name) if name else None

    def text(self, value):
        if not isinstance(value, str):
            return value
        if self._pattern is not None:
            value = self._pattern.sub(lambda m: self.host(m.group(1)), value)
        # a payload may hold lone surrogates (JSON \ud800): not encodable as UTF-8
        return value.encode('utf-8', 'replace').decode('utf-8')


def _plain(value, redact):
    """JSON values that re-serialise identically (no floats), host names replaced."""
    if isinstance(value, str):
        return redact.text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, redact) for v in value]
    return redact.text(str(value))


def _summary(kind, rtype, rid, host, fields):
    what = '%s %s' % (rtype, rid) if rtype and rid else ''
    on = ' on host %s' % host if host else ''
    reason = (': %s' % fields['reason']) if fields.get('reason') else ''
    if kind == PLACEMENT and rtype == OBJECT:
        frags = ', '.join('fragment %s -> %s (%s)%s' % (
            f.get('fragment'), f.get('cloud'), f.get('country') or 'country unknown',
            '' if f.get('acknowledged') else ' not acknowledged')
            for f in fields.get('fragments') or ())
        return '%s version %s placed: %s' % (what, fields.get('version'), frags or
                                             'no fragment recorded')
    if kind == PLACEMENT:
        action = fields.get('action') or ''
        if action.startswith('delete'):
            return '%s deleted (%s)' % (what, action)
        if rtype == VOLUME:
            return '%s on backend %s (%s)' % (
                what, fields.get('backend') or 'unknown', action)
        return '%s%s (%s)' % (what, on or ', not on a host yet', action)
    if kind == VERDICT:
        return 'host %s attested %s (verified at %s)' % (
            host, fields.get('status'), fields.get('verified_at'))
    if kind == HOST_ACTION:
        return 'trust reactor: host %s %s (status %s, jurisdiction %s)' % (
            host, fields.get('action'), fields.get('status'),
            fields.get('jurisdiction') or 'not recorded')
    if kind == TRUST_ACTION:
        return 'trust reactor: %s %s (host %s %s)' % (what, fields.get('action'), host,
                                                      fields.get('status'))
    if kind == KEY:
        return '%s of %s released to host %s' % (fields.get('what'), what, host)
    if kind == REFUSAL:
        if fields.get('refused') == 'key release':
            return '%s of %s refused to host %s%s' % (fields.get('what'), what, host,
                                                      reason)
        return '%s of %s refused%s' % (fields.get('refused'), what, reason)
    if kind == INTEGRITY:
        if rtype == LOG_ENTRY:
            return 'secure log ingestion refused an entry (%s) of source %s%s' % (
                fields.get('kind'), fields.get('source'), reason)
        if rtype == OBJECT:
            return 'cloud %s %s serving %s%s' % (fields.get('cloud'), fields.get('kind'),
                                                 what, reason)
        return 'integrity failure of %s (%s check, %s)%s%s' % (
            what, fields.get('check'), fields.get('operation'), on, reason)
    if kind == SEALED:
        return 'a record of the project encrypted with its secure log key'
    if kind == NOTE:
        return 'event appended through the secure log API by %s' % fields.get('submitted_by')
    return what


def render(item, project, redact, from_ns):
    """The report line of one selected record (without its proof)."""
    fact, row, entry = item.fact, item.row, item.entry
    fields = {k: v for k, v in fact.fields.items() if v is not None and k != 'storage_host'}
    if fact.fields.get('storage_host'):
        fields['storage_host'] = redact.host(fact.fields['storage_host'])
    fields = _plain(fields, redact)
    host = redact.host(fact.host)
    line = {'index': row.index, 'leaf_hash': _b64(row.leaf_hash),
            'time': format_time(entry.time_ns), 'kind': fact.kind,
            'event_type': item.event_type, 'context': entry.time_ns < from_ns}
    if fact.rtype and fact.rid:
        line['resource'] = {'type': fact.rtype, 'id': redact.text(fact.rid)}
    if host:
        line['host'] = host
    if fact.kind == SEALED:
        fields['ciphertext'] = _b64(entry.payload)
    line['details'] = fields
    line['summary'] = _summary(fact.kind, fact.rtype, line.get('resource', {}).get('id'),
                               host, fields)
    return line


# ---------------------------------------------------------------------------- format
def _b64(data):
    return base64.b64encode(bytes(data)).decode('ascii')


def _unb64(value, what, size=None):
    if not isinstance(value, str):
        raise ValueError('%s is not a base64 string' % what)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError('%s is not base64' % what)
    if size is not None and len(raw) != size:
        raise ValueError('%s is %d bytes, want %d' % (what, len(raw), size))
    return raw


def canonical(obj):
    """The one serialisation of report objects: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(',', ':'),
                      ensure_ascii=False).encode('utf-8')


def line_hash(line):
    """What the manifest signs for a line: SHA-256 of its canonical JSON without proof."""
    return hashlib.sha256(canonical({k: v for k, v in line.items() if k != 'proof'})).digest()


Manifest = collections.namedtuple(
    'Manifest', 'project window_from window_to generated origin size root entries')


def format_manifest(m):
    lines = [MANIFEST_HEADER, 'project %s' % m.project,
             'window %s %s' % (m.window_from or '-', m.window_to or '-'),
             'generated %s' % m.generated, 'log %s' % m.origin,
             'checkpoint %d %s' % (m.size, _b64(m.root)), 'lines %d' % len(m.entries)]
    lines.extend('%d %s' % (index, _b64(digest)) for index, digest in m.entries)
    return ('\n'.join(lines) + '\n').encode('utf-8')


def parse_manifest(text):
    """The signed manifest's text -> :class:`Manifest`; ValueError naming the line."""
    lines = text.decode('utf-8').split('\n')
    if lines[0] != MANIFEST_HEADER:
        raise ValueError('manifest line 1 is %r, not %r (a checkpoint, or another kind of '
                         'note, signed with the log key?)' % (lines[0][:60], MANIFEST_HEADER))
    if lines[-1] != '' or len(lines) < 8:
        raise ValueError('manifest has %d lines, want at least 7' % (len(lines) - 1))
    lines = lines[:-1]
    names = ('project', 'window', 'generated', 'log', 'checkpoint', 'lines')
    values = []
    for n, (name, line) in enumerate(zip(names, lines[1:7]), 2):
        if not line.startswith(name + ' '):
            raise ValueError('manifest line %d does not start with "%s "' % (n, name))
        values.append(line[len(name) + 1:])
    project, window, generated, origin, cp, count = values
    window = window.split(' ')
    cp = cp.split(' ')
    if len(window) != 2 or len(cp) != 2 or not cp[0].isdigit() or not count.isdigit():
        raise ValueError('manifest window, checkpoint or lines field is malformed')
    root = _unb64(cp[1], 'manifest checkpoint root', merkle.HASH_SIZE)
    entries = []
    for n, line in enumerate(lines[7:], 8):
        parts = line.split(' ')
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError('manifest line %d is not "<leaf index> <hash>"' % n)
        entries.append((int(parts[0]), _unb64(parts[1], 'manifest line %d hash' % n, 32)))
    if len(entries) != int(count):
        raise ValueError('manifest says %s lines but lists %d' % (count, len(entries)))
    indexes = [i for i, _h in entries]
    if any(b <= a for a, b in zip(indexes, indexes[1:])):
        raise ValueError('manifest leaf indexes are not strictly increasing')
    return Manifest(project, None if window[0] == '-' else window[0],
                    None if window[1] == '-' else window[1], generated, origin,
                    int(cp[0]), root, entries)


def build(rows, project, checkpoint_note, checkpoint, prove, signer, now_ns,
          from_ns=None, to_ns=None, consistency=None):
    """The report text (JSON Lines, ends with a newline).

    ``rows``: :class:`Row` objects in log order, all below ``checkpoint.size`` (the
    adapter selects them with :data:`EVENT_PREFIXES` and the project's tenant);
    ``checkpoint_note``: the signed C2SP note of ``checkpoint``; ``prove(index)``: the
    RFC 9162 inclusion proof of a leaf against it; ``signer``: the log's
    :class:`.checkpoint.NoteSigner` (signs the manifest); ``consistency``: optional
    ``(earlier size, proof)`` proving the checkpoint extends an earlier one.
    """
    check_project(project)
    selected, hosts = select(rows, project, from_ns, to_ns)
    redact = _Redactor(project, hosts)
    lines = []
    for item in selected:
        if item.row.index >= checkpoint.size:
            raise ReportError('record %d is not covered by the checkpoint of size %d'
                              % (item.row.index, checkpoint.size))
        line = render(item, project, redact, from_ns or 0)
        line['proof'] = [_b64(h) for h in prove(item.row.index)]
        lines.append(line)
    manifest = Manifest(project, format_time(from_ns), format_time(to_ns),
                        format_time(now_ns), checkpoint.origin, checkpoint.size,
                        checkpoint.root, [(ln['index'], line_hash(ln)) for ln in lines])
    note = cpmod.sign_note(format_manifest(manifest), signer)
    header = {'format': FORMAT, 'project_id': project, 'from': manifest.window_from,
              'to': manifest.window_to, 'generated_at': manifest.generated,
              'origin': checkpoint.origin, 'tree_size': checkpoint.size,
              'root_hash': _b64(checkpoint.root), 'lines': len(lines),
              'checkpoint': checkpoint_note.decode('utf-8'),
              'manifest': note.decode('utf-8'), 'host_names': HOST_NAMES,
              'sealed_payloads': SEALED_PAYLOADS}
    if consistency is not None:
        header['consistency'] = {'from_size': consistency[0],
                                 'proof': [_b64(h) for h in consistency[1]]}
    return b''.join(canonical(obj) + b'\n' for obj in [header] + lines)


# ---------------------------------------------------------------------------- verification
class Finding(Exception):
    """The first check the report fails: its text line (1 = header) and the check's name."""

    def __init__(self, line, check, detail):
        self.line, self.check, self.detail = line, check, detail
        super().__init__('line %d: %s: %s' % (line, check, detail))


class Verified(object):
    """A report that passed every check."""

    def __init__(self, header, manifest, checkpoint, lines):
        self.header, self.manifest, self.checkpoint, self.lines = \
            header, manifest, checkpoint, lines

    def summary(self):
        m = self.manifest
        return ('OK: report of project %s, %d line(s), window %s .. %s, every line included '
                'in the log %s at tree size %d (root %s)'
                % (m.project, len(self.lines), m.window_from or 'genesis',
                   m.window_to or 'checkpoint', m.origin, m.size, m.root.hex()))


def _parse_lines(text):
    """[(text line number, object)] of a report's text; Finding on the first bad one."""
    if isinstance(text, bytes):
        try:
            text = text.decode('utf-8')
        except UnicodeDecodeError as exc:
            raise Finding(text[:exc.start].count(b'\n') + 1, 'format', 'not UTF-8')
    if not text.strip():
        raise Finding(1, 'format', 'the report is empty')
    out = []
    for n, raw in enumerate(text.split('\n'), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise Finding(n, 'format', 'not a JSON object: %s' % exc)
        if not isinstance(obj, dict):
            raise Finding(n, 'format', 'not a JSON object')
        out.append((n, obj))
    return out


def _checkpoint_note(text):
    """The checkpoint note of a report (its header's) or the text of a checkpoint note."""
    if text.lstrip()[:1] not in ('{', b'{'):
        return text
    note = _parse_lines(text)[0][1].get('checkpoint')
    if not isinstance(note, str):
        raise Finding(1, 'format', 'the report header has no checkpoint')
    return note


def peek_checkpoint(text):
    """The checkpoint of a report or checkpoint note, unverified (Finding if none).

    What the next report's consistency proof is asked from.
    """
    try:
        return cpmod.parse_checkpoint(cpmod.split_note(_checkpoint_note(text))[0])
    except cpmod.CheckpointError as exc:
        raise Finding(1, 'format', 'no checkpoint: %s' % exc)


def read_checkpoint(text, verifier):
    """The checkpoint of a report (its header's) or of a C2SP checkpoint note, verified.

    Raises Finding (line 1) when it is not signed by ``verifier`` or is malformed.
    """
    try:
        return cpmod.open_checkpoint(_checkpoint_note(text), verifier)[0]
    except cpmod.CheckpointError as exc:
        raise Finding(1, 'checkpoint-signature', str(exc))


def verify(text, verifier, project=None, previous=None):
    """Verify a report offline with the log's verifier key; returns :class:`Verified`.

    ``project``: the project the report must be about; ``previous``: a verified
    :class:`.checkpoint.Checkpoint` of an earlier report or checkpoint, which the report's
    checkpoint must extend (RFC 9162 consistency). Raises :class:`Finding` naming the
    first bad line and the check it fails.
    """
    lines = _parse_lines(text)
    head_no, header = lines[0]
    if header.get('format') != FORMAT:
        raise Finding(head_no, 'format', 'the header is not a %s header' % FORMAT)
    note = header.get('checkpoint')
    if not isinstance(note, str):
        raise Finding(head_no, 'format', 'the header has no checkpoint')
    try:
        cp = cpmod.open_checkpoint(note, verifier)[0]
    except cpmod.CheckpointError as exc:
        raise Finding(head_no, 'checkpoint-signature', 'the checkpoint is not the log\'s: %s'
                      % exc)
    manifest_note = header.get('manifest')
    try:
        text_signed, signed = cpmod.open_note(manifest_note if isinstance(
            manifest_note, str) else '', [verifier])
        if signed.get(verifier.name, 0) is not None:
            raise cpmod.CheckpointError('no log signature on the manifest')
    except cpmod.CheckpointError as exc:
        raise Finding(head_no, 'manifest-signature', 'the manifest is not signed by the log '
                      'key: %s' % exc)
    try:
        manifest = parse_manifest(text_signed)
    except ValueError as exc:
        raise Finding(head_no, 'manifest', str(exc))
    expected = (('project_id', manifest.project), ('from', manifest.window_from),
                ('to', manifest.window_to), ('generated_at', manifest.generated),
                ('origin', manifest.origin), ('tree_size', manifest.size),
                ('root_hash', _b64(manifest.root)), ('lines', len(manifest.entries)))
    for field, value in expected:
        if header.get(field) != value:
            raise Finding(head_no, 'header', '%s is %r, the signed manifest says %r'
                          % (field, header.get(field), value))
    if (cp.origin, cp.size, cp.root) != (manifest.origin, manifest.size, manifest.root):
        raise Finding(head_no, 'header', 'the checkpoint (%s, size %d) is not the one the '
                      'signed manifest names (%s, size %d)'
                      % (cp.origin, cp.size, manifest.origin, manifest.size))
    if project is not None and manifest.project != project:
        raise Finding(head_no, 'project', 'the report is about project %s, not %s'
                      % (manifest.project, project))
    _check_lines(lines[1:], manifest, cp, head_no)
    if previous is not None:
        _check_consistency(header, previous, cp, head_no)
    return Verified(header, manifest, cp, [obj for _n, obj in lines[1:]])


def _check_lines(lines, manifest, cp, head_no):
    parsed = []
    for number, obj in lines:
        index = obj.get('index')
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise Finding(number, 'format', 'the line has no leaf index')
        try:
            leaf = _unb64(obj.get('leaf_hash'), 'leaf_hash', merkle.HASH_SIZE)
            proof = obj.get('proof')
            if not isinstance(proof, list):
                raise ValueError('proof is not a list')
            proof = [_unb64(p, 'proof[%d]' % i, merkle.HASH_SIZE)
                     for i, p in enumerate(proof)]
        except ValueError as exc:
            raise Finding(number, 'format', str(exc))
        parsed.append((number, index, leaf, proof, obj))
    at_line = {index: number for number, index, _l, _p, _o in parsed}
    listed = {index for index, _h in manifest.entries}
    previous = None
    for pos, (number, index, leaf, proof, obj) in enumerate(parsed):
        if pos >= len(manifest.entries):
            raise Finding(number, 'not-in-manifest', 'leaf index %d: the signed manifest '
                          'lists %d line(s), this one is extra (inserted, or spliced from '
                          'another report)' % (index, len(manifest.entries)))
        want, digest = manifest.entries[pos]
        if index != want:
            if previous is not None and index <= previous:
                raise Finding(number, 'order', 'leaf index %d follows leaf index %d: lines '
                              'reordered or repeated' % (index, previous))
            if index not in listed:
                raise Finding(number, 'not-in-manifest', 'leaf index %d is not in the '
                              'signed manifest (inserted, or spliced from another report)'
                              % index)
            if want in at_line:
                raise Finding(number, 'order', 'the signed manifest lists leaf index %d '
                              'here, the report has it at line %d: lines reordered'
                              % (want, at_line[want]))
            raise Finding(number, 'missing', 'the signed manifest lists leaf index %d '
                          'before this line (leaf index %d): that line was deleted'
                          % (want, index))
        if line_hash(obj) != digest:
            raise Finding(number, 'changed', 'leaf index %d: the line differs from what the '
                          'signed manifest lists for it' % index)
        try:
            merkle.verify_inclusion(leaf, index, cp.size, proof, cp.root)
        except merkle.ProofError as exc:
            raise Finding(number, 'inclusion', 'leaf index %d is not proved in the log at '
                          'tree size %d: %s' % (index, cp.size, exc))
        previous = index
    if len(parsed) < len(manifest.entries):
        missing = manifest.entries[len(parsed)][0]
        number = parsed[-1][0] + 1 if parsed else head_no + 1
        raise Finding(number, 'missing', 'the signed manifest lists %d line(s), the report '
                      'has %d: the line of leaf index %d and any after it were deleted'
                      % (len(manifest.entries), len(parsed), missing))


def _check_consistency(header, previous, cp, head_no):
    if previous.origin != cp.origin:
        raise Finding(head_no, 'consistency', 'the earlier checkpoint is of log %s, this '
                      'report of log %s' % (previous.origin, cp.origin))
    if previous.size > cp.size:
        raise Finding(head_no, 'consistency', 'the earlier checkpoint (size %d) is larger '
                      'than this report\'s (size %d)' % (previous.size, cp.size))
    proof = []
    if previous.size < cp.size:
        given = header.get('consistency')
        if not isinstance(given, dict) or given.get('from_size') != previous.size:
            raise Finding(head_no, 'consistency', 'the report carries no consistency proof '
                          'from tree size %d (request it with the earlier report or its '
                          'tree size as "previous")' % previous.size)
        try:
            proof = [_unb64(p, 'consistency proof', merkle.HASH_SIZE)
                     for p in given.get('proof') or []]
        except ValueError as exc:
            raise Finding(head_no, 'consistency', str(exc))
    try:
        merkle.verify_consistency(previous.size, cp.size, proof, previous.root, cp.root)
    except merkle.ProofError as exc:
        raise Finding(head_no, 'consistency', 'the log at tree size %d does not extend the '
                      'earlier checkpoint of size %d: %s' % (cp.size, previous.size, exc))
