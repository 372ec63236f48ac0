"""Trust requirements: a project member states them for the own project only, and may
tighten them; relaxing one (deleting it included) needs the project's manager or an admin
(policy ``trust:requirement:relax``)."""
from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc

from tclouds_openstack.tests.tempest.api import base

CONF = base.CONF


class TrustRequirementTest(base.BaseTCloudsTest):
    service = 'attestation'
    capability = 'scheduling'
    credentials = ['primary', 'alt', 'admin']

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.alt_attestation = cls.os_alt.attestation_v1.AttestationClient()

    @decorators.idempotent_id('5d1c5e8a-2b7e-4c41-8c5d-0c1f7e0a2001')
    def test_set_show_unset_own_requirement(self):
        project = self.attestation.tenant_id
        jurisdiction = CONF.tclouds.jurisdiction or 'DE'
        self.addCleanup(self._unset, self.admin_attestation, project)
        self.attestation.set_requirement(project, trusted_host=True,
                                         jurisdictions=[jurisdiction])
        shown = self.attestation.show_requirement(project)['requirement']
        self.assertTrue(shown['trusted_host'])
        self.assertEqual([jurisdiction], shown['jurisdictions'])
        # a member may not relax it: deleting it needs the project's manager or an admin
        self.assertRaises(lib_exc.Forbidden, self.attestation.unset_requirement, project)
        self.attestation.show_requirement(project)
        self.admin_attestation.unset_requirement(project)
        self.assertRaises(lib_exc.NotFound, self.attestation.show_requirement, project)

    @decorators.idempotent_id('5d1c5e8a-2b7e-4c41-8c5d-0c1f7e0a2002')
    def test_cannot_set_other_project(self):
        other = self.alt_attestation.tenant_id
        self.assertRaises((lib_exc.Forbidden, lib_exc.NotFound),
                          self.attestation.set_requirement, other, trusted_host=True)

    @decorators.idempotent_id('5d1c5e8a-2b7e-4c41-8c5d-0c1f7e0a2003')
    def test_malformed_requirement_rejected(self):
        project = self.attestation.tenant_id
        self.addCleanup(self._unset, self.admin_attestation, project)
        self.assertRaises(lib_exc.BadRequest, self.attestation.set_requirement, project,
                          jurisdictions=['not-a-country'])

    @staticmethod
    def _unset(client, project):
        try:
            client.unset_requirement(project)
        except lib_exc.NotFound:
            pass
