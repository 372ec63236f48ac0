"""``openstack trust requirement set|show|unset --project ...`` (ACaaS requirements).

Talks to ``/v1/requirements`` of the attestation API (service type ``attestation`` in the
Keystone catalog; ``OS_TCLOUDS_ATTESTATION_ENDPOINT`` overrides the URL).
"""
import os

from osc_lib.command import command
from osc_lib import exceptions

from tclouds_openstack.common import client as common_client
from tclouds_openstack.requirements import client as req_client

ENDPOINT_ENV = 'OS_TCLOUDS_ATTESTATION_ENDPOINT'


def _client(app):
    tclouds = app.client_manager.tclouds
    return req_client.RequirementsClient(
        tclouds.session, endpoint_override=os.environ.get(ENDPOINT_ENV),
        interface=tclouds.interface, region_name=tclouds.region_name)


def _project_id(app, name_or_id, domain=None):
    """Resolve a project name through Keystone; an ID (or no identity service) is kept."""
    try:
        from openstackclient.identity import common as identity_common
        return identity_common.find_project(app.client_manager.identity, name_or_id,
                                            domain).id
    except Exception:
        return name_or_id


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except common_client.ClientError as e:
        raise exceptions.CommandError(e.message if e.status != 404 else
                                      'no trust requirement stored: %s' % e.message)
    except common_client.ServiceUnavailable as e:
        raise exceptions.CommandError(str(e))


def _columns(record, extra=None):
    rows = [('project_id', record.get('project_id')),
            ('trusted_host', record.get('trusted_host') or 'not required'),
            ('jurisdictions', ','.join(record.get('jurisdictions') or []) or 'any'),
            ('effective_jurisdictions',
             ','.join(record.get('effective_jurisdictions') or []) or 'any'),
            ('updated_at', record.get('updated_at')),
            ('updated_by', record.get('updated_by'))]
    rows.extend(extra or [])
    return tuple(r[0] for r in rows), tuple(r[1] for r in rows)


class _ProjectCommand(command.Command):
    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--project', metavar='<project>', required=True,
                            help='Project (name or ID) the requirement applies to')
        parser.add_argument('--project-domain', metavar='<project-domain>',
                            help='Domain the project belongs to (name or ID)')
        return parser

    def project_id(self, parsed_args):
        return _project_id(self.app, parsed_args.project, parsed_args.project_domain)


class SetRequirement(_ProjectCommand, command.ShowOne):
    """Set (tighten, or as project manager relax) a project's trust requirement."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        trust = parser.add_mutually_exclusive_group()
        trust.add_argument('--trusted-host', dest='trusted_host', action='store_const',
                           const='required', help='Require attested (trusted) hosts')
        trust.add_argument('--no-trusted-host', dest='trusted_host', action='store_const',
                           const='optional', help='Do not require attested hosts')
        parser.add_argument('--jurisdiction', metavar='<code>', action='append',
                            help='Allowed jurisdiction: ISO 3166-1 alpha-2 code or group '
                                 '(EU, EEA); repeat for several. Replaces the stored list.')
        return parser

    def take_action(self, parsed_args):
        if parsed_args.trusted_host is None and not parsed_args.jurisdiction:
            raise exceptions.CommandError('nothing to set: give --trusted-host, '
                                          '--no-trusted-host or --jurisdiction')
        body = _call(_client(self.app).set, self.project_id(parsed_args),
                     trusted_host=parsed_args.trusted_host,
                     jurisdictions=parsed_args.jurisdiction)
        extra = [('relaxed', '; '.join(body.get('relaxed') or []) or '-')]
        return _columns(body['requirement'], extra)


class ShowRequirement(_ProjectCommand, command.ShowOne):
    """Show a project's stored trust requirement."""

    def take_action(self, parsed_args):
        record = _call(_client(self.app).show, self.project_id(parsed_args))
        if record is None:
            raise exceptions.CommandError('project %s has no trust requirement'
                                          % parsed_args.project)
        return _columns(record)


class UnsetRequirement(_ProjectCommand):
    """Remove parts of (or, with no option, all of) a project's trust requirement."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--trusted-host', action='store_true',
                            help='Drop the trusted-host requirement')
        parser.add_argument('--jurisdiction', action='store_true',
                            help='Drop the jurisdiction restriction')
        return parser

    def take_action(self, parsed_args):
        client = _client(self.app)
        project_id = self.project_id(parsed_args)
        if not parsed_args.trusted_host and not parsed_args.jurisdiction:
            _call(client.unset, project_id)
            return
        body = {}
        if parsed_args.trusted_host:
            body['trusted_host'] = None
        if parsed_args.jurisdiction:
            body['jurisdictions'] = None
        _call(client.put, '/v1/requirements/%s' % project_id, {'requirement': body})
