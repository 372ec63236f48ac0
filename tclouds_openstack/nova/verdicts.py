"""The Nova filters' verdict cache: one batched ``get_verdicts`` per scheduling request.

Kept free of Nova imports so it can be tested and reused without a Nova process.
"""
import threading
import time

from tclouds_openstack.attestation.backends import base
from tclouds_openstack import conf as tclouds_conf

# Largest batch per backend call: the attestation API answers at most 1,000 hosts per
# GET /v1/verdicts (attestation.service.api.MAX_HOSTS_PER_QUERY). Placement rarely returns
# more candidates ([scheduler] max_placement_results defaults to 1,000).
MAX_BATCH = 1000


class VerdictCache(object):
    """One batched ``get_verdicts`` per scheduling request, reused for ``verdict_cache_ttl``."""

    def __init__(self, backend_factory, conf=None):
        self._backend_factory = backend_factory
        self._backend = None
        self.conf = conf
        self._lock = threading.Lock()
        self._fetched_at = 0.0
        self._verdicts = {}
        self.calls = 0

    def lookup(self, hosts):
        """{host: Verdict} for ``hosts``; BackendUnavailable when the backend cannot answer."""
        hosts = set(hosts)
        ttl = (self.conf or tclouds_conf.CONF).trust_scheduling.verdict_cache_ttl
        with self._lock:
            if (ttl and time.monotonic() - self._fetched_at < ttl
                    and hosts.issubset(self._verdicts)):
                return {h: self._verdicts[h] for h in hosts}
            if self._backend is None:
                self._backend = self._backend_factory()
            names = sorted(hosts)
            verdicts = {}
            try:
                for start in range(0, len(names), MAX_BATCH):
                    self.calls += 1
                    verdicts.update(self._backend.get_verdicts(names[start:start + MAX_BATCH]))
            except base.BackendUnavailable:
                raise
            except Exception as e:
                # A backend bug must not turn into "trusted": treat as unavailable.
                raise base.BackendUnavailable('%s: %s' % (type(e).__name__, e))
            self._verdicts = dict(verdicts)
            self._fetched_at = time.monotonic()
            return {h: self._verdicts.get(h) for h in hosts}

    def clear(self):
        with self._lock:
            self._verdicts = {}
            self._fetched_at = 0.0
