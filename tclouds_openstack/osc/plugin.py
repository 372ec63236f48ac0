"""OpenStackClient plugin entry point (``openstack.cli.extension: tclouds``).

OSC loads this module, builds the client with :func:`make_client` when one of our
commands runs, and finds commands in the ``openstack.tclouds.v1`` entry-point group.
"""
import logging

from osc_lib import utils

LOG = logging.getLogger(__name__)

DEFAULT_API_VERSION = '1'
API_NAME = 'tclouds'
API_VERSION_OPTION = 'os_tclouds_api_version'
API_VERSIONS = {'1': 'tclouds_openstack.osc.plugin.ClientV1'}


class ClientV1(object):
    """Holds the keystoneauth1 session; each service's client is created from it on use."""

    def __init__(self, session, region_name=None, interface=None):
        self.session = session
        self.region_name = region_name
        self.interface = interface


def make_client(instance):
    """Return the tclouds client for OSC's ``ClientManager``."""
    client_class = utils.get_client_class(API_NAME, instance._api_version[API_NAME],
                                          API_VERSIONS)
    LOG.debug('Instantiating tclouds client: %s', client_class)
    return client_class(session=instance.session, region_name=instance.region_name,
                        interface=instance.interface)


def build_option_parser(parser):
    """Add the global ``--os-tclouds-api-version`` option."""
    parser.add_argument(
        '--os-tclouds-api-version',
        metavar='<tclouds-api-version>',
        default=utils.env('OS_TCLOUDS_API_VERSION', default=DEFAULT_API_VERSION),
        help='tclouds API version, default=%s (Env: OS_TCLOUDS_API_VERSION)'
             % DEFAULT_API_VERSION)
    parser.add_argument(
        '--os-attestation-endpoint',
        metavar='<url>',
        default=utils.env('OS_ATTESTATION_ENDPOINT'),
        help='Attestation API URL, bypassing the Keystone catalog (Env: '
             'OS_ATTESTATION_ENDPOINT)')
    return parser
