"""The one client of Cinder in this project (python-cinderclient over keystoneauth1).

The key release API asks Cinder, with its own service credential (``[tclouds_cinder]``),
the only facts that decide which host may hold a volume's key: the volume's project, its
``encryption_key_id`` and its attachments. What Cinder says is read, never inferred from a
request. An attachment's host: Cinder's API shows it (``host_name``) only for attachments
it has marked ``attached`` and only to admins; for one still ``attaching`` (Nova's hot
attach before ``attachment_complete``, a migration target) it is ``None`` here and the
caller must ask Nova where the attachment's server runs or moves.

The credential needs Cinder's ``admin`` role: reading another project's volume, its key ID
(microversion 3.64) and the hosts of its attachments is an admin view.
"""
import dataclasses

from cinderclient import client as cinder_client
from cinderclient import exceptions as cinder_exc
from keystoneauth1 import exceptions as ks_exceptions

from tclouds_openstack.common import client as common_client

GROUP = 'tclouds_cinder'
# 3.27: attachments API; 3.64: encryption_key_id in volume details
MICROVERSION = '3.64'
ATTACHED = 'attached'
ATTACHING = 'attaching'


class CinderUnavailable(Exception):
    """Cinder could not be asked (unreachable, refused our credential, bad answer)."""


@dataclasses.dataclass(frozen=True)
class Attachment:
    id: str
    status: str
    instance_id: str = None
    # Nova host name Cinder shows for it (attached ones), None when Cinder does not say
    host: str = None


@dataclasses.dataclass(frozen=True)
class Volume:
    id: str
    project_id: str
    status: str
    encryption_key_id: str = None
    attachments: tuple = ()


class CinderClient(object):
    def __init__(self, session, endpoint_override=None, interface=None, region_name=None,
                 timeout=None):
        kwargs = {'session': session, 'region_name': region_name,
                  'os_endpoint': endpoint_override}
        if interface:
            kwargs['endpoint_type'] = interface
        if timeout:
            kwargs['timeout'] = timeout
        self.cinder = cinder_client.Client(MICROVERSION, **kwargs)

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except cinder_exc.NotFound:
            raise
        except cinder_exc.ClientException as e:
            raise CinderUnavailable('Cinder refused %s: HTTP %s %s'
                                    % (what, getattr(e, 'code', '?'), e))
        except (ks_exceptions.ClientException, ConnectionError) as e:
            raise CinderUnavailable('Cinder unreachable for %s: %s' % (what, e))

    def volume(self, volume_id):
        """The :class:`Volume` ``volume_id`` with every attachment, or None if Cinder has none.

        Raise CinderUnavailable when Cinder cannot be asked or answers badly.
        """
        try:
            raw = self._call('volume %s' % volume_id, self.cinder.volumes.get, volume_id)
        except cinder_exc.NotFound:
            return None
        try:
            listed = self._call('the attachments of volume %s' % volume_id,
                                self.cinder.attachments.list, detailed=False,
                                search_opts={'volume_id': volume_id, 'all_tenants': 1})
        except cinder_exc.NotFound:
            listed = []
        try:
            return _volume(raw, listed)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise CinderUnavailable('Cinder answered malformed data for volume %s: %s'
                                    % (volume_id, e))


def _volume(raw, listed):
    info = raw.to_dict()
    hosts = {a['attachment_id']: a.get('host_name') for a in info.get('attachments') or []}
    attachments = []
    for item in listed:
        item = item.to_dict()
        if item.get('volume_id') != info['id']:
            continue        # defensive: a filter Cinder ignored
        attachments.append(Attachment(id=item['id'], status=item.get('status'),
                                      instance_id=item.get('instance'),
                                      host=hosts.get(item['id']) or None))
    return Volume(id=info['id'], project_id=info.get('os-vol-tenant-attr:tenant_id'),
                  status=info.get('status'),
                  encryption_key_id=info.get('encryption_key_id'),
                  attachments=tuple(attachments))


def from_conf(conf):
    """A client with the ``[tclouds_cinder]`` credentials, or None if none are configured."""
    from tclouds_openstack.conf import keymgr as conf_keymgr
    conf_keymgr.register_cinder_opts(conf)
    group = getattr(conf, GROUP)
    if not group.auth_type and not group.endpoint_override:
        return None
    if group.auth_type:
        session = common_client.session_from_conf(conf, GROUP)
    else:
        from keystoneauth1 import session as ks_session
        session = ks_session.Session()     # an unauthenticated endpoint: tests only
    return CinderClient(session, endpoint_override=group.endpoint_override,
                        interface=(group.valid_interfaces or [None])[0],
                        region_name=group.region_name, timeout=group.timeout)
