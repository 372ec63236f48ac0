"""Options of the secure log: store, sealing, checkpoints and their exporters, ingestion."""
from oslo_config import cfg

from tclouds_openstack.conf import base

securelog_group = cfg.OptGroup(
    'securelog', title='Secure log',
    help='Tamper-evident, forward-secure event log (RFC 9162 Merkle tree, C2SP checkpoints).')

securelog_opts = [
    cfg.StrOpt('connection',
               default='sqlite:////var/lib/tclouds/securelog/securelog.sqlite',
               secret=True,
               help='SQLAlchemy URL of the log store: sqlite (embedded default), '
                    'mysql+pymysql://user:pass@host/db or postgresql://user:pass@host/db. '
                    'The schema is created/upgraded at start-up.'),
    cfg.StrOpt('state_dir',
               default='/var/lib/tclouds/securelog',
               help='Directory of the log service\'s own secrets: the log sealer\'s current '
                    'key (log-sealer.json) and the checkpoint signing key '
                    '(checkpoint-signing.key). Must be local, private (0700) and NOT '
                    'backed up: restoring an old sealer key hands an attacker the key of a '
                    'past epoch and defeats forward security.'),
    cfg.StrOpt('auditor_dir',
               help='Where K0s of new sealers and the checkpoint verifier key are written '
                    '(the auditor bundle). Default: <state_dir>/auditor. Move its files to '
                    'the auditors and delete the .k0 key files from this host: whoever holds a '
                    'K0 can forge that sealer\'s whole history.'),
    cfg.StrOpt('source_keys_dir',
               help='Where the ingestion service keeps the verification keys of the sources '
                    'it accepts entries from (default: <state_dir>/source-keys), one file per '
                    'source, enrolled by an admin with "tclouds-securelog enroll-source '
                    'source-<name>.k0" (the K0 file the source wrote into its auditor/ '
                    'directory). Every entry from the bus is appended only if its source '
                    'seal verifies; entries of a source not enrolled are held (stored as '
                    'evidence with an alarm, never trusted on first use) and appended once it '
                    'is. The ingester evolves each key as epochs pass and erases the old one. '
                    'Local, private (0700), not backed up.'),
    cfg.ListOpt('enroll_from_dirs',
                default=[],
                help='Local directories of source K0 files (source-<name>.k0) whose sources '
                     'the ingestion service enrols by itself when it first meets them: '
                     'for sources on the ingestion host itself (an all-in-one or DevStack '
                     'controller: <source_state_dir>/auditor). Only the local filesystem '
                     'is trusted so, never the bus; sources on other hosts are enrolled by '
                     'an admin with "tclouds-securelog enroll-source".'),
    cfg.StrOpt('origin',
               default='tclouds-securelog',
               help='Checkpoint origin line (C2SP tlog-checkpoint): a unique name of this '
                    'log, conventionally a schema-less URL such as '
                    '"cloud.example.com/securelog". Also the checkpoint key name.'),
    cfg.FloatOpt('epoch_seconds',
                 default=60.0, min=0.001,
                 help='Lifetime of a sealing key in seconds. An attacker who takes a host '
                      'can alter nothing sealed before the current epoch, so shorter epochs '
                      'shrink the window; each epoch costs the auditor one hash.'),
    cfg.IntOpt('epoch_entries',
               default=100000, min=1,
               help='Most entries sealed under one key before it evolves.'),
    cfg.FloatOpt('checkpoint_interval',
                 default=10.0, min=0.0,
                 help='Seconds between signed checkpoints while entries arrive (0: after '
                      'every batch). Entries are tamper-evident against the operator only '
                      'once a checkpoint covering them was exported.'),
    cfg.IntOpt('storage_layout',
               default=2, choices=[1, 2],
               help='How appended records are stored. 2: the records of each appended '
                    'batch in one database row (securelog_batches), so that a full audit '
                    'reads one row per batch, not per record; 1: one row per record with '
                    'its bytes (as before). Both are always read, a log may hold both (the '
                    'records before the first batch row in layout 1).'),
    cfg.ListOpt('checkpoint_dirs',
                default=[],
                help='Directories (ideally on independent storage) each checkpoint is '
                     'written to as checkpoint-<size> and "checkpoint" (latest). Auditors '
                     'verify against the largest checkpoint found in any of them.'),
    cfg.StrOpt('swift_container',
               help='Swift container checkpoints are also exported to (empty: none). Uses '
                    'swift_auth_url, swift_user and swift_key.'),
    cfg.StrOpt('swift_auth_url', help='Swift v1 auth URL for the checkpoint container.'),
    cfg.StrOpt('swift_user', help='Swift user (account:user) for the checkpoint container.'),
    cfg.StrOpt('swift_key', secret=True, help='Swift key for the checkpoint container.'),
    cfg.ListOpt('witness_key_files',
                default=[],
                help='Files holding "<name> <hex Ed25519 seed>" of local witnesses that '
                     'cosign every checkpoint (C2SP tlog-cosignature). Remote witnesses '
                     'cosign exported checkpoints with their own tools instead.'),
    cfg.StrOpt('topic',
               default='securelog',
               help='Notification topic on which the securelog notification driver '
                    'publishes sealed entries and the ingestion service consumes them.'),
    cfg.IntOpt('batch_size',
               default=500, min=1,
               help='Most notifications appended in one database transaction.'),
    cfg.FloatOpt('batch_timeout',
                 default=0.5, min=0.0,
                 help='Seconds the ingestion waits to fill a batch before appending it.'),
    cfg.StrOpt('source_name',
               help='Name the notification driver and log handler seal under (default: '
                    '"<publisher_id or logger>@<hostname>"). Each name is one sequence '
                    'with its own key.'),
    cfg.StrOpt('source_state_dir',
               default='/var/lib/tclouds/securelog-source',
               help='Where the notification driver and the log handler keep their sealers '
                    '(current key and sequence per source) and, in auditor/, the K0 of each '
                    'new source. Must be local and private to the service\'s user.'),
    cfg.DictOpt('tenant_keys',
                default={},
                help='project_id:castellan key id pairs. Entries of these projects are '
                     'encrypted (AES-256-GCM) with the project\'s key before sealing, so '
                     'only holders of that key can read them; integrity stays publicly '
                     'verifiable.'),
    cfg.HostAddressOpt('api_host', default='127.0.0.1',
                       help='Address the tclouds-securelog-api service listens on.'),
    cfg.PortOpt('api_port', default=9791,
                help='Port of the tclouds-securelog-api service.'),
]


def register_opts(conf):
    base.register(conf, securelog_group, securelog_opts)


def list_opts():
    return [(securelog_group, securelog_opts)]
