"""Options for talking to a TPM 2.0 and for trusting its endorsement key."""
from oslo_config import cfg

from tclouds_openstack.conf import base

tpm_group = cfg.OptGroup(
    'tpm', title='TPM 2.0 access',
    help='How a host agent reaches its TPM and how a registrar trusts endorsement keys.')

tpm_opts = [
    cfg.StrOpt('tcti',
               default='device:/dev/tpmrm0',
               help='TCTI (TPM Command Transmission Interface) the host agent uses, in '
                    'tpm2-tss "name:config" form. Production: "device:/dev/tpmrm0" (the '
                    'kernel resource manager). Development and tests: '
                    '"swtpm:host=127.0.0.1,port=2321" for a software TPM. A wrong value '
                    'makes the agent fail at start-up with the TCTI error.'),
    cfg.StrOpt('ek_ca_bundle',
               default='/etc/tclouds/ek-ca-bundle.pem',
               help='PEM file with the CA certificates (roots and intermediates) that may '
                    'issue TPM endorsement key certificates. A host whose EK certificate '
                    'does not chain to one of these is refused at registration. For swtpm '
                    'hosts, the swtpm-localca issuer and root certificates.'),
    cfg.StrOpt('hash_algorithm',
               default='sha256',
               choices=['sha1', 'sha256', 'sha384', 'sha512'],
               help='PCR bank quoted and appraised.'),
    cfg.ListOpt('quote_pcrs',
                default=['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10'],
                help='PCR indexes every quote must cover (0-7 firmware and boot, 8-9 boot '
                     'loader, 10 IMA). A quote missing one of them is rejected.'),
]


def register_opts(conf):
    base.register(conf, tpm_group, tpm_opts)


def list_opts():
    return [(tpm_group, tpm_opts)]
