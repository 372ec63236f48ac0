"""The secure log REST API (adapter over the store, through common.wsgi).

Routes (JSON): ``GET /v1/checkpoint[?size=N]``, ``GET /v1/records[?marker&limit&source&
event_type&project_id]``, ``GET /v1/records/{index}``, ``POST /v1/records`` (202: the event
is sealed by this service's source and goes through the bus like any notification,
attributed to the caller: publisher ``user:<validated user id>``, the sealed context
holding its user, project and roles, tenant its project; never to this service),
``GET /v1/proofs/inclusion?index=I[&tree_size=N]``, ``GET
/v1/proofs/consistency?first=M[&second=N]``, ``GET /v1/projects/{project_id}/report
[?from=T1&to=T2&previous_size=M]`` (a tenant's data-protection report, see :mod:`.report`:
proved against the latest stored checkpoint, its manifest signed with the log's checkpoint
key, which this host must then hold). Reads come from the database; this process never
appends, so any number of API workers may run beside the one ingestion service.
"""
import base64
import os
import threading
import time

import sqlalchemy as sa

from tclouds_openstack.common import exception
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import models
from tclouds_openstack.securelog import policies
from tclouds_openstack.securelog import report as reportmod
from tclouds_openstack.securelog import sealing

MAX_LIMIT = 1000


def _b64(data):
    return base64.b64encode(bytes(data)).decode('ascii')


def _int_param(request, name, required=False, default=None, minimum=0):
    # bounded to the database's signed 64-bit integers (common.wsgi.int_param)
    return wsgi.int_param(request, name, default=default, minimum=minimum, required=required)


def record_view(row):
    """JSON view of a stored record (the CLI's ``show`` prints the same)."""
    import json
    record = sealing.decode_record(row.data)
    entry = sealing.decode_entry(record.entry)
    view = {'index': row.log_index, 'source': entry.source, 'seq': entry.seq,
            'epoch': entry.epoch, 'log_epoch': record.epoch, 'time_ns': entry.time_ns,
            'tenant': entry.tenant, 'event_type': row.event_type,
            'encrypted': bool(entry.flags & sealing.FLAG_ENCRYPTED),
            'leaf_hash': _b64(row.leaf_hash), 'record': _b64(row.data)}
    if view['encrypted']:
        view['ciphertext'] = _b64(entry.payload)
    else:
        try:
            view['payload'] = json.loads(entry.payload)
        except ValueError:
            view['payload'] = entry.payload.decode('utf-8', 'replace')
    return view


def submitter(ctx):
    """The publisher id of an event appended through the API: the validated caller."""
    return 'user:%s' % ctx.user_id


class Controller(object):
    def __init__(self, store, publisher=None):
        self.store = store
        self.publisher = publisher
        self._tree_lock = threading.Lock()
        self._tree = merkle.MerkleTree()

    def _current_tree(self):
        """The tree, extended with records appended by the ingestion since last time."""
        table = models.Record.__table__
        with self._tree_lock:
            tree = self._tree
            with self.store.engine.connect() as conn:
                rows = conn.execute(sa.select(table.c.log_index, table.c.leaf_hash)
                                    .where(table.c.log_index >= tree.size)
                                    .order_by(table.c.log_index)).all()
            for index, leaf_hash in rows:
                if index != tree.size:
                    raise exception.ServiceUnavailable(
                        'the store has no record at index %d: it needs an audit' % tree.size)
                tree.append_hash(bytes(leaf_hash))
            return tree

    def checkpoint(self, request):
        policy.authorize(request.context, policies.CHECKPOINT_GET, {})
        size = _int_param(request, 'size')
        from tclouds_openstack.securelog import store as storemod
        try:
            note = self.store.checkpoint_note(size)
        except storemod.StoreError as exc:
            raise exception.NotFound(str(exc))
        lines = note.decode('utf-8').split('\n')
        return {'checkpoint': note.decode('utf-8'), 'origin': lines[0],
                'tree_size': int(lines[1]), 'root_hash': lines[2]}

    def _visible_tenant(self, request, project):
        """None: every project (operators); otherwise the one project the caller may read.

        A tenant's list is filtered by its project in the store's query, never only by
        the policy check.
        """
        ctx = request.context
        if policy.allowed(ctx, policies.RECORD_LIST_ALL, {}):
            return project
        wanted = project if project is not None else ctx.project_id
        try:
            policy.authorize(ctx, policies.RECORD_LIST, {'project_id': wanted})
        except exception.Forbidden:
            raise exception.Forbidden('you may read only the records of your own project '
                                      '(policy %s)' % policies.RECORD_LIST)
        return wanted

    def list_records(self, request):
        tenant = self._visible_tenant(request, request.params.get('project_id'))
        limit = min(_int_param(request, 'limit', default=100, minimum=1), MAX_LIMIT)
        rows = self.store.list(marker=_int_param(request, 'marker', default=0), limit=limit,
                               source=request.params.get('source'), tenant=tenant,
                               event_type=request.params.get('event_type'))
        return {'records': [record_view(r) for r in rows]}

    def show_record(self, request, index):
        if not (index.isascii() and index.isdigit()) or len(index) > 19 \
                or int(index) > wsgi.INT64_MAX:
            raise exception.BadRequest('must be an integer 0..%d' % wsgi.INT64_MAX,
                                       field='index')
        index = int(index)
        ctx = request.context
        operator = policy.allowed(ctx, policies.RECORD_LIST_ALL, {})
        if not operator:
            policy.authorize(ctx, policies.RECORD_LIST, {'project_id': ctx.project_id})
        from tclouds_openstack.securelog import store as storemod
        try:
            row = self.store.get(index)
        except storemod.StoreError:
            raise exception.NotFound('no record at index %d' % index)
        if not operator and not policy.allowed(ctx, policies.RECORD_LIST,
                                               {'project_id': row.tenant}):
            # Other projects' and the operator's records are invisible: never confirm
            # they exist.
            raise exception.NotFound('no record at index %d' % index)
        return {'record': record_view(row)}

    def append(self, request):
        policy.authorize(request.context, policies.RECORD_CREATE, {})
        body = wsgi.json_body(request)
        event_type = wsgi.require(body, 'event_type', str)
        if not event_type or len(event_type) > 255:
            raise exception.BadRequest('must be 1-255 characters', field='event_type')
        payload = wsgi.require(body, 'payload', (dict, list, str, int, float), allow_none=True)
        unknown = set(body) - {'event_type', 'payload'}
        if unknown:
            raise exception.BadRequest('unknown field(s): %s' % ', '.join(sorted(unknown)),
                                       field='body')
        if self.publisher is None:
            raise exception.ServiceUnavailable('this API service has no message bus to '
                                               'publish to ([securelog] topic)')
        ctx = request.context
        if not ctx.user_id:
            raise exception.Forbidden('an appended event is attributed to its submitter: '
                                      'the request carries no validated user')
        # Attributed to the caller, never to this service: the publisher names the
        # validated user, and the sealed context carries its user, project and roles
        # (from the token keystonemiddleware validated), whoever the caller is.
        self.publisher.prepare(publisher_id=submitter(ctx)).info(ctx, event_type, payload)
        return 202, {'accepted': True, 'event_type': event_type,
                     'submitted_by': submitter(ctx)}

    def inclusion(self, request):
        policy.authorize(request.context, policies.PROOF_GET, {})
        tree = self._current_tree()
        index = _int_param(request, 'index', required=True)
        size = _int_param(request, 'tree_size', default=tree.size, minimum=1)
        if size > tree.size:
            raise exception.BadRequest('is beyond the current tree size %d' % tree.size,
                                       field='tree_size')
        if index >= size:
            raise exception.BadRequest('must be below tree_size %d' % size, field='index')
        return {'index': index, 'tree_size': size, 'leaf_hash': _b64(tree.leaf_hash(index)),
                'proof': [_b64(p) for p in tree.inclusion_proof(index, size)],
                'root_hash': _b64(tree.root(size))}

    def consistency(self, request):
        policy.authorize(request.context, policies.PROOF_GET, {})
        tree = self._current_tree()
        first = _int_param(request, 'first', required=True)
        second = _int_param(request, 'second', default=tree.size)
        if second > tree.size:
            raise exception.BadRequest('is beyond the current tree size %d' % tree.size,
                                       field='second')
        if first > second:
            raise exception.BadRequest('must not exceed second (%d)' % second, field='first')
        return {'first': first, 'second': second,
                'proof': [_b64(p) for p in tree.consistency_proof(first, second)],
                'first_root_hash': _b64(tree.root(first)),
                'second_root_hash': _b64(tree.root(second))}

    # ---- a tenant's data-protection report
    def _report_signer(self):
        """The log's checkpoint key (signs report manifests); never created here."""
        path = os.path.join(self.store.state_dir, 'checkpoint-signing.key')
        if not os.path.exists(path):
            raise exception.ServiceUnavailable(
                'reports are signed with the log\'s checkpoint key, which this API host does '
                'not hold ([securelog] state_dir %s has no checkpoint-signing.key): run the '
                'report API where the ingestion service keeps its state' % self.store.state_dir)
        return self.store.signer

    def _report_rows(self, project_id, size):
        """Records below ``size`` a report may need, in log order.

        The project's own, and every record of an event type the report interprets (the
        payloads decide in :mod:`.report`).
        """
        table = models.Record.__table__
        wanted = [table.c.tenant == project_id] + [
            table.c.event_type.like(prefix.replace('_', '\\_') + '%', escape='\\')
            for prefix in reportmod.EVENT_PREFIXES]
        query = (sa.select(table.c.log_index, table.c.leaf_hash, table.c.tenant,
                           table.c.time_ns, table.c.data)
                 .where(table.c.log_index < size).where(sa.or_(*wanted))
                 .order_by(table.c.log_index))
        from tclouds_openstack.securelog import store as storemod
        with self.store.engine.connect() as conn, self.store.engine.connect() as other:
            boundary = self.store._layout2_start(conn)
            result = conn.execution_options(stream_results=True).execute(query)
            for part in result.partitions(1000):
                # records in batch rows (storage layout 2) have their bytes there; read on
                # another connection (this one is streaming)
                found = self.store.batch_bytes(other, [row[0] for row in part], boundary)
                for row in part:
                    try:
                        data = storemod.SecureLogStore._bytes(row[0], row[4], boundary, found)
                    except storemod.StoreError as exc:
                        raise exception.ServiceUnavailable(str(exc))
                    yield reportmod.Row(row[0], bytes(row[1]), row[2], row[3], bytes(data))

    def report(self, request, project_id):
        ctx = request.context
        try:
            reportmod.check_project(project_id)
        except reportmod.ReportError as exc:
            raise exception.BadRequest(str(exc).split(': ', 1)[1], field='project_id')
        policy.authorize(ctx, policies.REPORT_GET, {'project_id': project_id})
        window = {}
        for name in ('from', 'to'):
            raw = request.params.get(name)
            if raw:
                try:
                    window[name] = reportmod.parse_time(raw, name)
                except reportmod.ReportError as exc:
                    raise exception.BadRequest(str(exc).split(': ', 1)[1], field=name)
        if 'from' in window and 'to' in window and window['from'] >= window['to']:
            raise exception.BadRequest('must be later than from', field='to')
        previous = _int_param(request, 'previous_size')
        signer = self._report_signer()
        from tclouds_openstack.securelog import checkpoint as cpmod
        from tclouds_openstack.securelog import store as storemod
        try:
            note = self.store.checkpoint_note()
            checkpoint, _w = cpmod.open_checkpoint(note, signer.verifier(),
                                                   origin=self.store.origin)
        except storemod.StoreError:
            raise exception.ServiceUnavailable('the log has no signed checkpoint yet: a '
                                               'report is proved against one; try again '
                                               'after the next checkpoint')
        except cpmod.CheckpointError as exc:
            raise exception.ServiceUnavailable('the latest checkpoint does not verify with '
                                               'this host\'s log key: %s' % exc)
        tree = self._current_tree()
        if tree.size < checkpoint.size or tree.root(checkpoint.size) != checkpoint.root:
            raise exception.ServiceUnavailable(
                'the stored records do not hash to the signed checkpoint of size %d: the '
                'store needs an audit ("tclouds-securelog verify")' % checkpoint.size)
        consistency = None
        if previous is not None:
            if previous > checkpoint.size:
                raise exception.BadRequest('is beyond the latest checkpoint\'s tree size %d'
                                           % checkpoint.size, field='previous_size')
            consistency = (previous, tree.consistency_proof(previous, checkpoint.size))
        size = checkpoint.size
        text = reportmod.build(
            self._report_rows(project_id, size), project_id, note, checkpoint,
            lambda index: tree.inclusion_proof(index, size), signer, time.time_ns(),
            window.get('from'), window.get('to'), consistency)
        return {'report': text.decode('utf-8'), 'project_id': project_id,
                'lines': text.count(b'\n') - 1, 'tree_size': size}


def build_router(store, publisher=None):
    policy.register_rules(policies.list_rules())
    c = Controller(store, publisher)
    router = wsgi.Router()
    router.connect('/v1/checkpoint', c.checkpoint, ['GET'])
    router.connect('/v1/records', c.list_records, ['GET'])
    router.connect('/v1/records', c.append, ['POST'])
    router.connect('/v1/records/{index}', c.show_record, ['GET'])
    router.connect('/v1/proofs/inclusion', c.inclusion, ['GET'])
    router.connect('/v1/proofs/consistency', c.consistency, ['GET'])
    router.connect('/v1/projects/{project_id}/report', c.report, ['GET'])
    return router


def build_app(conf, store, publisher=None):
    router = build_router(store, publisher)
    policy.get_enforcer(conf)       # bind the process's enforcer to this configuration
    return wsgi.build_app(conf, router)
