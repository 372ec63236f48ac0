"""REST API of the attestation service (``tclouds-attestation-api``, service type
``attestation``, default port 9610), behind keystonemiddleware ``auth_token``.

::

    GET    /v1/hosts                      list hosts with their verdicts       (operator)
    GET    /v1/hosts/{host}               one host                             (operator)
    PATCH  /v1/hosts/{host}               {"policy": name}                     (admin)
    DELETE /v1/hosts/{host}               forget a registration                (admin)
    GET    /v1/hosts/{host}/history       verdict history, newest first        (operator)
    POST   /v1/hosts/{host}/attest        attest now (202)                     (admin)
    POST   /v1/hosts/{host}/approve       enrol the EK of the host's registration
                                          {"ek_sha256"?, "credentials"?}       (admin)
    PUT    /v1/hosts/{host}/enrolment     {"ek_sha256", "credentials": [ids]}  (admin)
    GET    /v1/hosts/{host}/enrolment     the host's enrolment                 (operator)
    GET    /v1/enrolments                 every enrolment                      (operator)
    GET    /v1/host-credentials/{id}      the host a Keystone user or application
                                          credential ID stands for (key release) (service)
    GET    /v1/verdicts?hosts=a,b         batched verdicts for consumers       (operator, service)
    GET    /v1/policies                   appraisal policies                   (operator)
    POST   /v1/policies                   {"name", "tpm_policy", "runtime_policy",
                                           "mb_refstate"} (Keylime formats),
                                           "mb_engine", "allow_unorderly_shutdown"
                                                                               (admin)
    GET    /v1/policies/{name}            one policy with its documents        (operator)
    DELETE /v1/policies/{name}                                                 (admin)
    GET    /v1/trust/servers              trust of the hosts running the caller's
                                          project's servers                    (project)
    GET    /v1/trust/servers/{server_id}  trust of the host running one server (project)

The tenant view (``/v1/trust/servers``) never names a host: it answers per server with the
host's status, the time of its verdict and Nova's opaque per-project ``hostId``, and a
generic reason instead of the appraisal's (which describes the operator's software).
Another project's server is a 404, exactly like a server that does not exist, so neither
host names nor server ids of other tenants leak. Nova is asked with the
``[attestation_compute]`` credentials (only Nova admins see a server's host).

A ``trusted`` verdict older than ``[attestation] max_verdict_age`` is shown as ``unknown``
with the reason, so no reader can mistake a stale verdict for trust. The routes of other
areas (the trust requirements of the scheduling area) are added to the same router.
"""
import datetime
import importlib
import json

from tclouds_openstack.attestation.appraisal import policy as policy_mod
from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation import compute as compute_mod
from tclouds_openstack.attestation import policies
from tclouds_openstack.attestation.service import hostnames
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.common import client as common_client
from tclouds_openstack.common import exception
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi

MAX_HOSTS_PER_QUERY = 1000


def _iso(value):
    return store_mod.aware(value).isoformat() if value is not None else None


def effective_verdict(host, max_age, now=None, max_skew=base.DEFAULT_MAX_CLOCK_SKEW):
    """(status, reasons) as consumers must see them: stale or future trust is unknown."""
    reasons = json.loads(host.reasons or '[]')
    status = host.status
    if host.registration == 'awaiting_approval':
        return base.UNKNOWN, ['registration awaits an admin\'s approval: its EK (sha256:%s) '
                              'is not enrolled for this host name' % host.ek_sha256]
    if host.registration != 'active':
        return base.UNKNOWN, ['registration not completed (AK not activated)']
    if status == base.TRUSTED:
        if host.verified_at is None:
            return base.UNKNOWN, ['never attested']
        problem = base.freshness_problem('last verdict', store_mod.aware(host.verified_at),
                                         max_age, max_skew, store_mod.aware(now))
        if problem:
            return base.UNKNOWN, [problem]
    return status, reasons


# what a tenant is told instead of the appraisal's reasons (which name the operator's files)
TENANT_REASONS = {
    base.TRUSTED: [],
    base.UNTRUSTED: ['the compute host running this server failed attestation'],
    base.UNKNOWN: ['the trust of the compute host running this server is not known now'],
}


class AttestationController(object):
    def __init__(self, conf, store, compute=None):
        self.conf = conf
        self.store = store
        self.compute = compute

    def _host_view(self, host, detail=True):
        status, reasons = effective_verdict(host, self.conf.attestation.max_verdict_age,
                                            max_skew=self.conf.attestation.max_clock_skew)
        view = {'host': host.name, 'status': status, 'reasons': reasons,
                'verified_at': _iso(host.verified_at), 'policy': host.policy
                or self.conf.attestation.default_policy, 'registration': host.registration}
        if detail:
            view.update({'stored_status': host.status, 'ak_name': host.ak_name,
                         'reset_count': host.reset_count, 'ima_offset': host.ima_offset,
                         'last_answer_at': _iso(host.last_answer_at),
                         'registered_at': _iso(host.registered_at),
                         'activated_at': _iso(host.activated_at),
                         'next_attest_at': _iso(host.next_attest_at),
                         'attested_by': host.attested_by,
                         'has_ek_certificate': host.ek_certificate is not None,
                         'ek_sha256': host.ek_sha256,
                         'pending_ak_name': host.pending_ak_name})
        return view

    # ------------------------------------------------------------------ hosts
    def list_hosts(self, request):
        policy.authorize(request.context, 'attestation:host:list', {})
        return {'hosts': [self._host_view(h, detail=False) for h in self.store.list_hosts()]}

    def show_host(self, request, host):
        policy.authorize(request.context, 'attestation:host:get', {})
        return {'host': self._host_view(self.store.get_host(host))}

    def update_host(self, request, host):
        policy.authorize(request.context, 'attestation:host:update', {})
        body = wsgi.json_body(request)
        name = wsgi.require(body, 'policy', str, allow_none=True)
        if name is not None:
            self.store.get_policy(name)     # 404 for an unknown policy
        self.store.set_host_policy(host, name)
        return {'host': self._host_view(self.store.get_host(host))}

    def delete_host(self, request, host):
        policy.authorize(request.context, 'attestation:host:delete', {})
        self.store.delete_host(host)
        return 204, None

    def history(self, request, host):
        policy.authorize(request.context, 'attestation:host:history', {})
        limit = wsgi.int_param(request, 'limit', default=100, minimum=1, maximum=10000)
        rows = self.store.history(host, limit)
        return {'history': [{'status': r.status, 'reasons': json.loads(r.reasons),
                             'verified_at': _iso(r.verified_at), 'reset_count': r.reset_count,
                             'worker': r.worker} for r in rows]}

    def attest(self, request, host):
        policy.authorize(request.context, 'attestation:host:attest', {})
        self.store.request_attestation(host)
        return 202, {'host': host, 'requested_at': _iso(store_mod.utcnow())}

    def verdicts(self, request):
        policy.authorize(request.context, 'attestation:verdict:list', {})
        raw = request.GET.get('hosts')
        if raw is None:
            raise exception.BadRequest('is required (comma-separated host names)',
                                       field='hosts')
        names = [n for n in raw.split(',') if n]
        if len(names) > MAX_HOSTS_PER_QUERY:
            raise exception.BadRequest('at most %d hosts per query' % MAX_HOSTS_PER_QUERY,
                                       field='hosts')
        found = {}
        for host in self.store.list_hosts(names):
            status, reasons = effective_verdict(host, self.conf.attestation.max_verdict_age,
                                                max_skew=self.conf.attestation.max_clock_skew)
            # registration: a consumer tells "never appraised" (awaiting approval, AK not
            # activated, activated but not yet attested) from an appraisal's "unknown"
            found[host.name] = {'status': status, 'reasons': reasons,
                                'verified_at': _iso(host.verified_at),
                                'registration': host.registration}
        return {'verdicts': found}

    # ------------------------------------------------------------------ enrolment
    @staticmethod
    def _enrolment_view(enrolment, credentials):
        return {'host': enrolment.host, 'ek_sha256': enrolment.ek_sha256,
                'origin': enrolment.origin, 'created_at': _iso(enrolment.created_at),
                'created_by': enrolment.created_by, 'credentials': credentials}

    def enrol(self, request, host):
        policy.authorize(request.context, 'attestation:enrolment:create', {})
        body = wsgi.json_body(request)
        ek_sha256 = _ek_sha256(wsgi.require(body, 'ek_sha256', str))
        credentials = _credentials(body.get('credentials', []))
        self.store.enrol(_host_name(host), ek_sha256, credentials,
                         created_by=request.context.user_id)
        return {'enrolment': self._enrolment_view(*self.store.get_enrolment(host))}

    def show_enrolment(self, request, host):
        policy.authorize(request.context, 'attestation:enrolment:get', {})
        return {'enrolment': self._enrolment_view(*self.store.get_enrolment(host))}

    def list_enrolments(self, request):
        policy.authorize(request.context, 'attestation:enrolment:list', {})
        return {'enrolments': [self._enrolment_view(e, c)
                               for e, c in self.store.list_enrolments()]}

    def approve(self, request, host):
        policy.authorize(request.context, 'attestation:host:approve', {})
        body = wsgi.json_body(request, required=False)
        ek_sha256 = body.get('ek_sha256')
        if ek_sha256 is not None:
            ek_sha256 = _ek_sha256(wsgi.require(body, 'ek_sha256', str))
        credentials = None
        if body.get('credentials') is not None:
            credentials = _credentials(body['credentials'])
        self.store.approve(host, ek_sha256, credentials, approved_by=request.context.user_id)
        return {'host': self._host_view(self.store.get_host(host)),
                'enrolment': self._enrolment_view(*self.store.get_enrolment(host))}

    def host_credential(self, request, credential_id):
        """Which enrolled host a (validated) Keystone credential ID stands for."""
        policy.authorize(request.context, 'attestation:host_credential:get', {})
        host = self.store.host_for_credential(credential_id)
        if host is None:
            raise exception.NotFound('credential %s stands for no enrolled host'
                                     % credential_id)
        return {'credential_id': credential_id, 'host': host}

    # ------------------------------------------------------------------ tenant view
    def _nova(self, method, *args):
        if self.compute is None:
            raise exception.ServiceUnavailable(
                'the tenant trust view is not configured: set [attestation_compute] '
                'credentials so the attestation API can ask Nova which host runs a server')
        try:
            return getattr(self.compute, method)(*args)
        except (common_client.ClientError, common_client.ServiceUnavailable) as e:
            raise exception.ServiceUnavailable('Nova did not answer: %s' % e)

    def _server_trust(self, server_id, host, host_id):
        status, verified_at = base.UNKNOWN, None
        if host:
            rows = self.store.list_hosts([host])
            if rows:
                status, _ = effective_verdict(
                    rows[0], self.conf.attestation.max_verdict_age,
                    max_skew=self.conf.attestation.max_clock_skew)
                verified_at = _iso(rows[0].verified_at)
        return {'server': server_id, 'status': status, 'reasons': TENANT_REASONS[status],
                'verified_at': verified_at, 'host_id': host_id}

    def server_trust(self, request, server_id):
        ctx = request.context
        # may the caller see a server at all (its own project's, or any as an operator)?
        policy.authorize(ctx, policies.SERVER_TRUST_GET, {'project_id': ctx.project_id})
        found = self._nova('server', server_id)
        missing = exception.NotFound('no server %s in your project' % server_id)
        if found is None:
            raise missing
        project_id, host, host_id = found
        if not policy.allowed(ctx, policies.SERVER_TRUST_GET, {'project_id': project_id}):
            raise missing       # another project's server: as if it did not exist
        return {'server': self._server_trust(server_id, host, host_id)}

    def list_server_trust(self, request):
        policy.authorize(request.context, policies.SERVER_TRUST_LIST,
                         {'project_id': request.context.project_id})
        project_id = request.context.project_id
        if not project_id:
            raise exception.BadRequest('the token is not scoped to a project', field='token')
        servers = self._nova('project_servers', project_id)
        return {'servers': [dict(self._server_trust(server_id, host, host_id), name=name)
                            for server_id, name, host, host_id in servers]}

    # ------------------------------------------------------------------ policies
    @staticmethod
    def _policy_view(row, documents=True):
        view = {'name': row.name, 'created_at': _iso(row.created_at),
                'has_tpm_policy': bool(row.tpm_policy),
                'has_runtime_policy': bool(row.runtime_policy),
                'has_mb_refstate': bool(row.mb_refstate),
                # the engine appraisal applies (none stored: example with a reference state)
                'mb_engine': row.mb_engine or (policy_mod.DEFAULT_MB_ENGINE
                                               if row.mb_refstate else None),
                'allow_unorderly_shutdown': bool(row.allow_unorderly_shutdown)}
        if documents:
            for key in ('tpm_policy', 'runtime_policy', 'mb_refstate'):
                value = getattr(row, key)
                view[key] = json.loads(value) if value else None
        return view

    def list_policies(self, request):
        policy.authorize(request.context, 'attestation:policy:list', {})
        return {'policies': [self._policy_view(p, False) for p in self.store.list_policies()]}

    def show_policy(self, request, name):
        policy.authorize(request.context, 'attestation:policy:get', {})
        return {'policy': self._policy_view(self.store.get_policy(name))}

    def create_policy(self, request):
        policy.authorize(request.context, 'attestation:policy:create', {})
        body = wsgi.json_body(request)
        name = wsgi.require(body, 'name', str)
        if not name or len(name) > 255 or '/' in name:
            raise exception.BadRequest('must be 1..255 characters without "/"', field='name')
        documents = {}
        for key in ('tpm_policy', 'runtime_policy', 'mb_refstate'):
            value = body.get(key)
            if value is not None and not isinstance(value, dict):
                raise exception.BadRequest('must be a JSON object (Keylime format) or null',
                                           field=key)
            documents[key] = value
        # the measured-boot engine (Keylime's names) and the clock policy; parse_policy
        # refuses an unknown engine, a non-string, and a non-boolean flag, naming the field
        mb_engine = body.get('mb_engine')
        allow_unorderly = body.get('allow_unorderly_shutdown', False)
        try:
            policy_mod.parse_policy(name, mb_engine=mb_engine,
                                    allow_unorderly_shutdown=allow_unorderly, **documents)
        except policy_mod.PolicyError as e:
            raise exception.BadRequest(e.reason, field=e.field)
        self.store.create_policy(name, mb_engine=mb_engine,
                                 allow_unorderly_shutdown=allow_unorderly,
                                 **{k: json.dumps(v) if v is not None else None
                                    for k, v in documents.items()})
        return 201, {'policy': self._policy_view(self.store.get_policy(name), False)}

    def delete_policy(self, request, name):
        policy.authorize(request.context, 'attestation:policy:delete', {})
        self.store.delete_policy(name)
        return 204, None

    def versions(self, request):
        return {'versions': [{'id': 'v1', 'status': 'CURRENT'}],
                'time': datetime.datetime.now(datetime.timezone.utc).isoformat()}


_HEX = frozenset('0123456789abcdef')
MAX_CREDENTIALS = 16


def _host_name(value):
    return hostnames.check(value)


def _ek_sha256(value):
    """The EK hash of an API body: 64 hex digits (an optional "sha256:" prefix, any case)."""
    digest = value.strip().lower()
    if digest.startswith('sha256:'):
        digest = digest[len('sha256:'):]
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise exception.BadRequest('must be the SHA-256 of the EK\'s SubjectPublicKeyInfo: 64 '
                                   'hexadecimal digits', field='ek_sha256')
    return digest


def _credentials(value):
    """Keystone user or application credential IDs of an API body."""
    if not isinstance(value, list) or len(value) > MAX_CREDENTIALS:
        raise exception.BadRequest('must be a list of at most %d Keystone user or application '
                                   'credential IDs' % MAX_CREDENTIALS, field='credentials')
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= 255 or not (
                item.replace('-', '').replace('_', '').isalnum() and item.isascii()):
            raise exception.BadRequest('%r is not a Keystone ID' % (item,),
                                       field='credentials')
    return value


def build_router(conf, store, compute=None):
    controller = AttestationController(conf, store, compute)
    router = wsgi.Router()
    c = controller
    router.connect('/', c.versions, ['GET'])
    router.connect('/v1/hosts', c.list_hosts, ['GET'])
    router.connect('/v1/hosts/{host}', c.show_host, ['GET'])
    router.connect('/v1/hosts/{host}', c.update_host, ['PATCH'])
    router.connect('/v1/hosts/{host}', c.delete_host, ['DELETE'])
    router.connect('/v1/hosts/{host}/history', c.history, ['GET'])
    router.connect('/v1/hosts/{host}/attest', c.attest, ['POST'])
    router.connect('/v1/hosts/{host}/approve', c.approve, ['POST'])
    router.connect('/v1/hosts/{host}/enrolment', c.enrol, ['PUT'])
    router.connect('/v1/hosts/{host}/enrolment', c.show_enrolment, ['GET'])
    router.connect('/v1/enrolments', c.list_enrolments, ['GET'])
    router.connect('/v1/host-credentials/{credential_id}', c.host_credential, ['GET'])
    router.connect('/v1/verdicts', c.verdicts, ['GET'])
    router.connect('/v1/policies', c.list_policies, ['GET'])
    router.connect('/v1/policies', c.create_policy, ['POST'])
    router.connect('/v1/policies/{name}', c.show_policy, ['GET'])
    router.connect('/v1/policies/{name}', c.delete_policy, ['DELETE'])
    router.connect('/v1/trust/servers', c.list_server_trust, ['GET'])
    router.connect('/v1/trust/servers/{server_id}', c.server_trust, ['GET'])
    # other areas served by the same process (the scheduling area's trust requirements)
    try:
        requirements_api = importlib.import_module('tclouds_openstack.requirements.api')
    except ImportError:
        requirements_api = None
    if requirements_api is not None and hasattr(requirements_api, 'add_routes'):
        requirements_api.add_routes(router, conf)
    return router


def create_app(conf, store=None, compute=None):
    """The WSGI application (auth_token, context, policy) over ``store``.

    ``compute``: the Nova client of the tenant view (default: from ``[attestation_compute]``).
    """
    policy.register_rules(policies.list_rules())
    policy.get_enforcer(conf)       # bind the process's enforcer to this configuration
    store = store or store_mod.Store(conf.attestation.connection)
    compute = compute or compute_mod.from_conf(conf)
    return wsgi.build_app(conf, build_router(conf, store, compute))
