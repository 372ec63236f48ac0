"""Options of attestation-based scheduling: Nova/Cinder filters, trait sync, trust reactor.

Verdict freshness is ``[attestation] max_verdict_age`` (one bound for every consumer).
"""
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from tclouds_openstack.conf import base

scheduling_group = cfg.OptGroup(
    'trust_scheduling', title='Attestation-based scheduling',
    help='How the Nova and Cinder scheduler plugins of tclouds-openstack decide which hosts '
         'and backends satisfy a tenant\'s trust and jurisdiction requirements, and the '
         'service credentials (keystoneauth1 options of this group) they and '
         'tclouds-trust-reactor use for the tclouds API, Nova and Placement. Without '
         'auth_type, requests go unauthenticated to the endpoint overrides (tests only).')

scheduling_opts = [
    cfg.FloatOpt('verdict_cache_ttl',
                 default=2.0, min=0.0,
                 help='Seconds a batch of verdicts fetched by the Nova filters is reused by '
                      'later scheduling requests in the same scheduler process. Each request '
                      'makes at most one batched call; 0 makes one call per request. '
                      'Freshness is still checked against [attestation] max_verdict_age.'),
    cfg.BoolOpt('project_requirements',
                default=True,
                help='Read each project\'s stored requirement (openstack trust requirement '
                     'set) from the tclouds API while scheduling. The API being unreachable '
                     'then fails the boot closed. False: only flavor extra specs, image '
                     'traits and boot hints count.'),
    cfg.FloatOpt('requirements_cache_ttl',
                 default=10.0, min=0.0,
                 help='Seconds a project\'s stored requirement is cached by the schedulers. '
                      'A changed requirement takes effect after at most this long.'),
    cfg.StrOpt('requirements_endpoint_override',
               help='URL of the tclouds API serving /v1/requirements (normally the '
                    'attestation API). Unset: [attestation] endpoint_override, else the '
                    'Keystone catalog (service type "attestation").'),
    cfg.BoolOpt('translate_to_traits',
                default=True,
                help='Turn trust requirements into Placement required traits before the '
                     'allocation candidate query (CUSTOM_TCLOUDS_TRUSTED, '
                     'CUSTOM_JURISDICTION_<CC>) so only qualifying hosts are candidates. '
                     'The filters re-check freshness either way. Needs the trait sync '
                     '(tclouds-trust-reactor) running, or no host will qualify.'),
    cfg.StrOpt('placement_endpoint_override',
               help='Placement URL, bypassing the Keystone catalog.'),
    cfg.StrOpt('compute_endpoint_override',
               help='Nova API URL, bypassing the Keystone catalog.'),
    cfg.StrOpt('region_name', help='Region of the Nova and Placement endpoints.'),
]

reactor_group = cfg.OptGroup(
    'trust_reactor', title='Reaction to trust changes (tclouds-trust-reactor)',
    help='What tclouds-trust-reactor does when a host changes trust state.')

reactor_opts = [
    cfg.BoolOpt('disable_untrusted_compute',
                default=True,
                help='Disable the nova-compute service of a host that turns untrusted or '
                     'unknown, with the reasons as disabled reason. New boots then avoid '
                     'it even without the filters.'),
    cfg.BoolOpt('enable_trusted_compute',
                default=True,
                help='Re-enable a compute service this reactor disabled once its host is '
                     'trusted again. Services disabled by an operator (other reason) are '
                     'never touched.'),
    cfg.StrOpt('instance_action',
               default='none',
               choices=[('none', 'leave instances where they are'),
                        ('live-migrate', 'live-migrate instances that required a trusted host '
                                         'away from the untrusted host'),
                        ('stop', 'stop instances that required a trusted host')],
               help='What happens to instances requiring a trusted host when their host '
                    'turns untrusted.'),
    cfg.FloatOpt('trait_sync_interval',
                 default=30.0, min=1.0,
                 help='Seconds between two full reconciliations of the Placement traits '
                      '(CUSTOM_TCLOUDS_TRUSTED, CUSTOM_JURISDICTION_<CC>) with the verdicts '
                      'and aggregate labels. Trust-state notifications update a host at once; '
                      'the full pass repairs anything missed. Keep it at or below the '
                      'attestation interval.'),
]

# The Cinder filter reads this group from cinder.conf.
cinder_group = cfg.OptGroup(
    'trust_cinder', title='Cinder jurisdiction filter',
    help='Jurisdiction labels of Cinder backends for tclouds_openstack JurisdictionFilter.')

cinder_opts = [
    cfg.DictOpt('backend_jurisdictions',
                default={},
                help='Jurisdiction of each backend: "backend_name:CC" pairs, for example '
                     '"lvm-fra:DE,ceph-nyc:US" (the backend name as in volume_backend_name, '
                     'or the host@backend). A backend without a label is refused for any '
                     'project that restricts jurisdictions.'),
]


def register_opts(conf):
    base.register(conf, scheduling_group, scheduling_opts)
    base.register(conf, reactor_group, reactor_opts)
    ks_loading.register_session_conf_options(conf, scheduling_group.name)
    ks_loading.register_auth_conf_options(conf, scheduling_group.name)
    base.register(conf, cinder_group, cinder_opts)


def list_opts():
    ks_opts = (ks_loading.get_session_conf_options()
               + ks_loading.get_auth_common_conf_options()
               + ks_loading.get_auth_plugin_conf_options('password'))
    return [(scheduling_group, scheduling_opts + ks_opts),
            (reactor_group, reactor_opts),
            (cinder_group, cinder_opts)]
