"""OpenStackClient plugin: ``openstack attestation ...``, ``openstack trust ...``, ...."""
