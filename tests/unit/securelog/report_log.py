"""A secure log of two projects' events, shaped as the real emitters send them.

Shared by the report's unit tests and its functional tests (which append the same events
to a real store). Nova (versioned and legacy), Cinder, the attestation worker, the trust
reactor, the key release API, protected volumes, the cloud-of-clouds middleware and the
ingester's alarms; each ``(event, tenant)`` is what the ``securelog`` notification driver
seals (``tenant``: the notification context's project, as the driver takes it).
"""
import itertools

A, B = 'a' * 32, 'b' * 32
SERVICE = 'c' * 32
ADMIN = 'd' * 32
HOSTS = ('compute-1', 'compute-2', 'compute-3')
SERVER_A, SERVER_A2, SERVER_B = 'server-a-1', 'server-a-2', 'server-b-1'
VOLUME_A, VOLUME_B = 'volume-a-1', 'volume-b-1'
UNIT_A, UNIT_B = 'unit-a' * 8, 'unit-b' * 8


def notification(event_type, payload, project, publisher='nova', priority='INFO',
                 user='user-x'):
    """What the driver seals for one notification, and its tenant."""
    return ({'event_type': event_type, 'priority': priority, 'publisher_id': publisher,
             'message_id': 'm-%s' % event_type, 'timestamp': '2026-12-05 10:00:00',
             'payload': payload, 'context': {'project_id': project, 'user_id': user}},
            project or '')


def nova_versioned(action, server, project, host, context_project=None):
    payload = {'nova_object.name': 'InstanceActionPayload', 'nova_object.namespace': 'nova',
               'nova_object.version': '1.8',
               'nova_object.data': {'uuid': server, 'tenant_id': project, 'host': host,
                                    'node': host, 'state': 'active'}}
    return notification('instance.%s' % action, payload, context_project or project,
                        publisher='nova-compute:%s' % host)


def nova_legacy(action, server, project, host, context_project=None):
    return notification('compute.instance.%s' % action, {
        'instance_id': server, 'tenant_id': project, 'host': host, 'state': 'active'},
        context_project or project, publisher='compute.%s' % host)


def verdict(host, status):
    return notification('attestation.host.%s' % status, {
        'host': host, 'status': status, 'previous_status': 'trusted',
        'reasons': ['PCR 4: kernel sha256:beef is not in policy golden'],
        'verified_at': '2026-12-05T10:00:00+00:00', 'ak_name': 'ak'}, None,
        publisher='tclouds-attestation.ctl')


def key(event, volume, project, host, reason):
    return notification('keymgr.key.%s' % event, {
        'subject': 'key-1', 'subject_type': 'key', 'volume_id': volume, 'key_id': 'key-1',
        'project_id': project, 'host': host, 'reason': reason, 'user_id': 'host-user',
        'verdict_status': 'trusted', 'verified_at': None}, SERVICE, publisher='keymgr')


def events(a=A, b=B):
    """([(event, tenant)] in log order, {name: index} of the events tests look for).

    ``a``, ``b``: the two projects' IDs (real Keystone projects in functional tests).
    """
    A, B = a, b     # noqa: N806 (the module's defaults, or the projects given)
    out = []
    marks = {}

    def add(name, item):
        if name:
            marks[name] = len(out)
        out.append(item)

    for host in HOSTS:
        add('trusted-%s' % host, verdict(host, 'trusted'))
    add('jurisdiction-1', notification('trust.host.trait_added', {
        'host': 'compute-1', 'status': 'trusted', 'reasons': [], 'jurisdiction': 'DE',
        'trait': 'CUSTOM_TCLOUDS_TRUSTED'}, None, publisher='trust-reactor.ctl'))
    add('create-a', nova_versioned('create.end', SERVER_A, A, 'compute-1'))
    add('create-a-legacy', nova_legacy('create.end', SERVER_A, A, 'compute-1'))
    add('create-b', nova_versioned('create.end', SERVER_B, B, 'compute-2'))
    add('volume-a', notification('volume.create.end', {
        'volume_id': VOLUME_A, 'tenant_id': A, 'host': 'storage-1@lvm#pool',
        'status': 'available'}, A, publisher='volume.storage-1@lvm'))
    add('volume-b', notification('volume.create.end', {
        'volume_id': VOLUME_B, 'tenant_id': B, 'host': 'storage-1@ceph#pool',
        'status': 'available'}, B, publisher='volume.storage-1@ceph'))
    add('key-a', key('released', VOLUME_A, A, 'compute-1',
                     'host compute-1 trusted; volume attached to compute-1'))
    add('key-b', key('released', VOLUME_B, B, 'compute-2', 'attached to compute-2'))
    add('refused-a', key('refused', VOLUME_A, A, 'compute-2',
                         'volume %s is attached to compute-1, not to compute-2' % VOLUME_A))
    add('untrusted-2', verdict('compute-2', 'untrusted'))
    add('untrusted-1', verdict('compute-1', 'untrusted'))
    add('disabled-1', notification('trust.host.disabled', {
        'host': 'compute-1', 'status': 'untrusted', 'reasons': ['PCR 4'],
        'jurisdiction': 'DE', 'service_id': 7}, None, publisher='trust-reactor.ctl'))
    add('migrate-a', notification('trust.instance.live_migrate', {
        'host': 'compute-1', 'status': 'untrusted', 'reasons': ['PCR 4'],
        'instance_id': SERVER_A, 'project_id': A}, None, publisher='trust-reactor.ctl'))
    add('moved-a', nova_versioned('live_migration_post.end', SERVER_A, A, 'compute-3',
                                  context_project=ADMIN))
    add('no-host-a2', notification('compute_task.build_instances.error', {
        'nova_object.name': 'ComputeTaskPayload', 'nova_object.data': {
            'instance_uuid': SERVER_A2, 'state': 'error',
            'reason': {'nova_object.data': {
                'exception': 'NoValidHost', 'exception_message':
                'No valid host was found. no candidate host is attested as trusted: host '
                'compute-2: untrusted'}},
            'request_spec': {'nova_object.data': {'project_id': A,
                                                  'instance_uuid': SERVER_A2}}}},
        A, publisher='nova-conductor:ctl', priority='ERROR'))
    # Cinder's scheduler (cinder/scheduler/manager.py _set_volume_state_and_notify)
    add('no-backend-a', notification('scheduler.create_volume', {
        'request_spec': {'volume_properties': {'project_id': A, 'size': 1}},
        'volume_properties': {'project_id': A, 'size': 1}, 'volume_id': 'volume-a-2',
        'state': {'volume_state': 'error'}, 'method': 'create_volume',
        'reason': 'No valid backend was found. no backend in an allowed jurisdiction'},
        A, publisher='scheduler.ctl', priority='ERROR'))
    fragments = [{'fragment': i, 'cloud': 'cloud-%d' % i, 'country': 'DE',
                  'acknowledged': i != 3} for i in range(4)]
    add('object-a', notification('cloudstore.object.placed', {
        'account': 'AUTH_' + A, 'container': 'docs', 'object': 'patient.pdf',
        'project_id': A, 'data_unit': UNIT_A, 'version': 17, 'size': 10, 'etag': 'e',
        'allowed_jurisdictions': ['DE'], 'fragments': fragments}, A, publisher='cloudstore'))
    add('object-b', notification('cloudstore.object.placed', {
        'account': 'AUTH_' + B, 'container': 'lamps', 'object': 'state', 'project_id': B,
        'data_unit': UNIT_B, 'version': 3, 'size': 1, 'etag': 'e',
        'allowed_jurisdictions': None, 'fragments': fragments}, B, publisher='cloudstore'))
    add('fault-a', notification('cloudstore.fault', {
        'cloud': 'cloud-2', 'kind': 'faulty', 'data_unit': UNIT_A,
        'reason': 'fragment hash mismatch'}, None, publisher='cloudstore', priority='WARN'))
    add('fault-b', notification('cloudstore.fault', {
        'cloud': 'cloud-1', 'kind': 'faulty', 'data_unit': UNIT_B,
        'reason': 'fragment hash mismatch'}, None, publisher='cloudstore', priority='WARN'))
    add('write-refused-a', notification('cloudstore.write.refused', {
        'account': 'AUTH_' + A, 'container': 'docs', 'object': 'x-ray.png',
        'project_id': A, 'reason': 'only 2 clouds in DE, 4 needed'}, A,
        publisher='cloudstore', priority='WARN'))
    add('integrity-a', notification('blockstore.integrity.failed', {
        'event_type': 'blockstore.integrity.failed', 'volume': 'bs-uuid-1',
        'volume_id': VOLUME_A, 'project_id': A, 'sector': 12, 'check': 'mac',
        'reason': 'sector 12 fails its MAC', 'operation': 'read', 'host': 'compute-3'},
        None, publisher='blockstore.compute-3', priority='ERROR'))
    add('integrity-b', notification('blockstore.integrity.failed', {
        'volume_id': VOLUME_B, 'project_id': B, 'sector': 3, 'check': 'mac',
        'reason': 'sector 3', 'operation': 'read'}, None, priority='ERROR'))
    add('note-a', notification('audit.manual.note', {'text': 'hello'}, A,
                               publisher='user:u-of-a'))
    add('deleted-b', nova_versioned('delete.end', SERVER_B, B, 'compute-2'))
    return out, marks


def conflict_alarm(stored_index, tenant):
    return notification('securelog.entry.conflict', {
        'kind': 'conflict', 'source': 'nova-compute@compute-1', 'seq': 4,
        'stored_index': stored_index, 'tenant': tenant,
        'reason': 'conflicting duplicate'}, None, publisher='securelog-ingest.ctl',
        priority='ERROR')


def times(start_ns, step_ns=10 ** 9):
    return itertools.count(start_ns, step_ns)
