"""Patient-centric home healthcare: a hospital's project on the deployed cloud.

A hospital project restricted to EU hosts and trusted hosts only; a patient-monitoring
server on an attested EU host; its encrypted volume, whose key only that host receives;
patient documents in an EU-only cloud-of-clouds container; then the server's host is
compromised (its measured boot changes) and the cloud reacts: the host is appraised
untrusted and disabled, the key is refused to it, the tenant sees its server's trust lost,
a new server avoids the host; everything is in the secure log, and the hospital's auditor
verifies the project's report offline.
"""
import os


DOCUMENTS = {
    'patient-0001/discharge-letter.txt': b'Discharge letter, patient 0001 (synthetic)\n' * 200,
    'patient-0001/ecg-2026-12-05.csv': b'time_ms,lead_ii_uv\n' + b''.join(
        b'%d,%d\n' % (i * 4, (i * 37) % 900 - 450) for i in range(5000)),
    'patient-0002/care-plan.txt': b'Home care plan, patient 0002 (synthetic)\n' * 120,
}


def run(r):
    """Drive the scenario on ``r`` (a :class:`.run.Run`); the observations end in r.obs."""
    state = {}
    r.opening('hospital', 'patient-monitor', 'patient-data', state)

    def documents():
        from tclouds_openstack.scenarios import cloud
        r.dep.need('cloudstore_policy')
        objects = cloud.Objects(r.tenant_creds, 'tenant', r.transcript)
        container = 'patient-records-%s' % r.short
        objects.create_container(container, r.dep.cloudstore_policy)
        r.later('container %s' % container, objects.delete_container, container)
        for name, body in sorted(DOCUMENTS.items()):
            objects.put(container, name, body)
        intact = all(objects.get(container, name) == body
                     for name, body in DOCUMENTS.items())
        r.obs.fact('documents_read_back_intact', intact)
        placed = r.object_placements(container, list(DOCUMENTS))
        return {'container': container, 'objects': len(DOCUMENTS), 'intact': intact,
                'clouds': {k: [f.get('cloud') for f in v.get('fragments') or []]
                           for k, v in placed.items()}}
    r.step('documents', documents)
    r.checkpoint()

    host = state['server']['host']
    r.step('compromise', lambda: r.compromise(host))

    def reaction():
        out = r.await_reaction(host)
        out['key'] = r.release_key(state['volume'], host, 'after')
        view = r.wait('the tenant sees server %s untrusted' % state['server']['id'],
                      lambda: (lambda v: v if v.get('status') != 'trusted' else None)(
                          r.server_trust(state['server']['id'])))
        out['server_trust'] = view.get('status') or view.get('error')
        return out
    r.step('reaction', reaction)

    def after():
        s = r.boot('patient-monitor-2', wait_for_host=False)
        r.obs.fact('server_after', s)
        return s
    r.step('after', after)
    r.checkpoint()

    def log():
        path, lines = r.project_report(('placement', 'verdict', 'key', 'refusal', 'host-action'),
                                       extra=lambda lines: _reaction_logged(r, host, lines))
        state['report'] = path
        return {'report': os.path.basename(path), 'lines': len(lines) - 1,
                'kinds': r.obs['report']['kinds']}
    r.step('log', log)
    r.step('audit', lambda: r.audit(state['report']))


def _reaction_logged(r, host, lines):
    """Whether the report covers the cloud's reaction to the compromise.

    The compromised host (named by the project's pseudonym for it) appraised untrusted,
    and the key refused to it, after the compromise.
    """
    from tclouds_openstack.securelog import report as reportmod
    alias = reportmod.host_pseudonym(r.obs['project']['id'], host)
    since = r.obs['facts']['compromised_at']
    after = [ln for ln in lines[1:] if ln.get('host') == alias
             and (_seconds(ln.get('time')) or 0) >= since]
    return (any(ln['kind'] == 'verdict' and (ln.get('details') or {}).get('status')
                == 'untrusted' for ln in after)
            and any(ln['kind'] == 'refusal' for ln in after))


def _seconds(text):
    from tclouds_openstack.scenarios import run as run_mod
    return run_mod._iso_seconds(text)
