"""What every demo chapter gets: the report, a scratch directory and the demo's secure log.

The demo runs its own secure log (embedded sqlite store in the scratch directory, one
forward-secure source ``demo@controller``): every security-relevant outcome a chapter
shows (a verdict, a detected tampering, a cloud fault) is sealed into it with
:meth:`Demo.record`, and the last chapter audits it as an auditor would.
"""
import os

from tclouds_openstack.securelog import source as source_mod
from tclouds_openstack.securelog import store as store_mod

ORIGIN = 'demo.tclouds-openstack.example/securelog'
SOURCE = 'demo@controller'


class Demo(object):

    def __init__(self, report, workdir):
        self.report = report
        self.workdir = workdir
        self.log_dir = self.path('securelog')
        self.log = store_mod.SecureLogStore(
            'sqlite:///%s' % os.path.join(self.log_dir, 'log.sqlite'), self.log_dir,
            origin=ORIGIN, checkpoint_interval=3600)
        self.source = source_mod.Source(SOURCE, self.log_dir)
        #: Event types recorded so far, in order (the audit chapter lists them).
        self.recorded = []

    def path(self, *parts):
        """A directory under the scratch directory, created."""
        path = os.path.join(self.workdir, *parts)
        os.makedirs(path, exist_ok=True)
        return path

    def record(self, event_type, payload, tenant=''):
        """Seal one security-relevant event into the demo's secure log; its index."""
        event = {'event_type': event_type, 'publisher_id': 'tclouds-demo',
                 'priority': 'INFO', 'payload': payload}
        (index,) = self.log.append_events(self.source, [(event, tenant)])
        self.recorded.append(event_type)
        return index

    def close(self):
        self.log.close()
