"""Base classes of the tclouds API tests: clients per persona, availability checks."""
from tempest import config
from tempest import test

CONF = config.CONF


class BaseTCloudsTest(test.BaseTestCase):
    """Clients of each persona, skipped when the API or capability is not deployed.

    Personas: ``os_admin`` (admin), ``os_primary`` (member of a project), both with
    dynamic credentials, i.e. real Keystone users and tokens.
    """

    credentials = ['primary', 'admin']
    # The capability and API a test class needs.
    capability = None
    service = None

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if cls.service and not getattr(CONF.service_available, cls.service):
            raise cls.skipException('the %s API is not available' % cls.service)
        if cls.capability and cls.capability not in CONF.tclouds.capabilities:
            raise cls.skipException('capability %s is not deployed' % cls.capability)

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.admin_attestation = cls.os_admin.attestation_v1.AttestationClient()
        cls.attestation = cls.os_primary.attestation_v1.AttestationClient()
        cls.admin_secure_log = cls.os_admin.secure_log_v1.SecureLogClient()
        cls.secure_log = cls.os_primary.secure_log_v1.SecureLogClient()
        cls.key_release = cls.os_primary.key_release_v1.KeyReleaseClient()
