"""``openstack attestation host|policy ...``: OSC commands over the attestation API client."""
import json

from osc_lib.command import command
from osc_lib import exceptions

from tclouds_openstack.attestation.appraisal import policy as policy_mod
from tclouds_openstack.attestation import client as client_mod
from tclouds_openstack.common import client as common_client

HOST_COLUMNS = ('host', 'status', 'verified_at', 'policy', 'registration')


def _client(app):
    manager = app.client_manager
    endpoint = None
    try:
        endpoint = app.options.os_attestation_endpoint
    except AttributeError:
        pass
    return client_mod.AttestationClient(manager.session, endpoint_override=endpoint,
                                        interface=manager.interface,
                                        region_name=manager.region_name)


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (common_client.ClientError, common_client.ServiceUnavailable) as e:
        raise exceptions.CommandError(str(e))


def _row(item, columns):
    return tuple(', '.join(item.get(c)) if isinstance(item.get(c), list) else item.get(c)
                 for c in columns)


def _show(item):
    keys = sorted(item)
    return keys, tuple(json.dumps(item[k]) if isinstance(item[k], (dict, list))
                       else item[k] for k in keys)


class ListHost(command.Lister):
    """List hosts registered for attestation and their trust status."""

    def take_action(self, parsed_args):
        hosts = _call(_client(self.app).list_hosts)
        return HOST_COLUMNS, [_row(h, HOST_COLUMNS) for h in hosts]


class ShowHost(command.ShowOne):
    """Show a host's registration and verdict (with every failed check)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', help='Nova compute host name')
        return parser

    def take_action(self, parsed_args):
        return _show(_call(_client(self.app).show_host, parsed_args.host))


class HostHistory(command.Lister):
    """Show a host's verdict history, newest first."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', help='Nova compute host name')
        parser.add_argument('--limit', type=int, default=20, help='entries to show')
        return parser

    def take_action(self, parsed_args):
        rows = _call(_client(self.app).history, parsed_args.host, parsed_args.limit)
        columns = ('verified_at', 'status', 'reasons', 'reset_count', 'worker')
        return columns, [_row(r, columns) for r in rows]


class AttestHost(command.Command):
    """Attest a host now instead of waiting for its next round."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', help='Nova compute host name')
        return parser

    def take_action(self, parsed_args):
        _call(_client(self.app).attest, parsed_args.host)


class SetHost(command.ShowOne):
    """Assign an appraisal policy to a host."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', help='Nova compute host name')
        parser.add_argument('--policy', required=True, help='appraisal policy name')
        return parser

    def take_action(self, parsed_args):
        return _show(_call(_client(self.app).update_host, parsed_args.host,
                           parsed_args.policy))


class DeleteHost(command.Command):
    """Forget a host's registration (its agent must register again)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', help='Nova compute host name')
        return parser

    def take_action(self, parsed_args):
        _call(_client(self.app).delete_host, parsed_args.host)


def _ek_sha256(parsed_args):
    """The EK hash an admin enrols: --ek-sha256, or computed from --ek-certificate."""
    if parsed_args.ek_certificate is None:
        return parsed_args.ek_sha256
    from tclouds_openstack.attestation.service import registrar
    from tclouds_openstack.tpm import errors
    try:
        with open(parsed_args.ek_certificate, 'rb') as f:
            return registrar.ek_sha256_of_certificate(f.read())
    except OSError as e:
        raise exceptions.CommandError('--ek-certificate %s: %s' % (parsed_args.ek_certificate,
                                                                   e.strerror))
    except errors.TPMError as e:
        raise exceptions.CommandError('--ek-certificate %s: %s' % (parsed_args.ek_certificate,
                                                                   e))


class EnrollHost(command.ShowOne):
    """Bind a host name to its TPM's endorsement key and its Keystone credentials.

    Only an EK enrolled (or approved) for a name can become trusted under it, and only the
    credentials enrolled for a host receive its volumes' keys.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', help='Nova compute host name')
        ek = parser.add_mutually_exclusive_group(required=True)
        ek.add_argument('--ek-certificate', metavar='<file>',
                        help='the TPM\'s EK certificate (PEM or DER), e.g. from '
                             '"tpm2_getekcertificate"; its public key is enrolled')
        ek.add_argument('--ek-sha256', metavar='<hex>',
                        help='SHA-256 of the EK\'s DER SubjectPublicKeyInfo, e.g. '
                             '"tpm2_readpublic -c 0x81010001 -f der -o ek.der; sha256sum '
                             'ek.der" on the host')
        parser.add_argument('--credential', metavar='<id>', action='append', default=[],
                            help='Keystone user ID or application credential ID with which '
                                 'this host asks for volume keys (repeat for several)')
        return parser

    def take_action(self, parsed_args):
        return _show(_call(_client(self.app).enrol, parsed_args.host, _ek_sha256(parsed_args),
                           parsed_args.credential))


class ApproveHost(command.ShowOne):
    """Approve the EK of a registration that awaits it (enrols it for the host's name)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', help='Nova compute host name')
        parser.add_argument('--ek-sha256', metavar='<hex>',
                            help='refuse unless the registration\'s EK has this hash (check it '
                                 'against the host\'s own TPM before approving)')
        parser.add_argument('--credential', metavar='<id>', action='append',
                            help='Keystone user or application credential ID of the host '
                                 '(repeat; default: keep the enrolled ones)')
        return parser

    def take_action(self, parsed_args):
        answer = _call(_client(self.app).approve, parsed_args.host, parsed_args.ek_sha256,
                       parsed_args.credential)
        return _show(dict(answer['enrolment'], registration=answer['host']['registration'],
                          status=answer['host']['status']))


class ShowEnrolment(command.ShowOne):
    """Show a host's enrolment: its EK hash and credentials."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', help='Nova compute host name')
        return parser

    def take_action(self, parsed_args):
        return _show(_call(_client(self.app).show_enrolment, parsed_args.host))


class ListEnrolment(command.Lister):
    """List enrolled hosts with their EK hashes and credentials."""

    def take_action(self, parsed_args):
        columns = ('host', 'ek_sha256', 'credentials', 'origin', 'created_at')
        return columns, [_row(e, columns) for e in _call(_client(self.app).list_enrolments)]


def _load_json(path, option):
    if path is None:
        return None
    try:
        with open(path, 'rb') as f:
            return json.loads(f.read())
    except (OSError, ValueError) as e:
        raise exceptions.CommandError('%s %s: %s' % (option, path, e))


class CreatePolicy(command.ShowOne):
    """Create an appraisal policy from Keylime-format JSON files."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('name', help='policy name (hosts use "default" unless set)')
        parser.add_argument('--tpm-policy', metavar='<file>',
                            help='PCR allowlist {"<pcr>": ["<hex>", ...], "mask": ...}')
        parser.add_argument('--runtime-policy', metavar='<file>',
                            help='IMA runtime policy (keylime-policy create runtime)')
        parser.add_argument('--mb-refstate', metavar='<file>',
                            help='measured-boot reference state (keylime-policy create '
                                 'measured-boot)')
        parser.add_argument('--mb-engine', metavar='<engine>',
                            choices=policy_mod.MB_ENGINES,
                            help='measured-boot policy engine, as Keylime names them: %s '
                                 '(default: example when --mb-refstate is given, which it '
                                 'needs)' % ', '.join(policy_mod.MB_ENGINES))
        parser.add_argument('--allow-unorderly-shutdown', action='store_true',
                            help='accept a TPM whose clock is not known to be safe '
                                 '(clockInfo.safe = NO after a power loss)')
        return parser

    def take_action(self, parsed_args):
        policy = _call(_client(self.app).create_policy, parsed_args.name,
                       _load_json(parsed_args.tpm_policy, '--tpm-policy'),
                       _load_json(parsed_args.runtime_policy, '--runtime-policy'),
                       _load_json(parsed_args.mb_refstate, '--mb-refstate'),
                       mb_engine=parsed_args.mb_engine,
                       allow_unorderly_shutdown=parsed_args.allow_unorderly_shutdown)
        return _show(policy)


class ListPolicy(command.Lister):
    """List appraisal policies."""

    def take_action(self, parsed_args):
        columns = ('name', 'created_at', 'has_tpm_policy', 'has_runtime_policy',
                   'has_mb_refstate', 'mb_engine', 'allow_unorderly_shutdown')
        return columns, [_row(p, columns) for p in _call(_client(self.app).list_policies)]


class ShowPolicy(command.ShowOne):
    """Show an appraisal policy with its documents."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('name', help='policy name')
        return parser

    def take_action(self, parsed_args):
        return _show(_call(_client(self.app).show_policy, parsed_args.name))


class DeletePolicy(command.Command):
    """Delete an appraisal policy (hosts using it turn untrusted: no policy)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('name', help='policy name')
        return parser

    def take_action(self, parsed_args):
        _call(_client(self.app).delete_policy, parsed_args.name)
