"""Where a volume's key-encryption key comes from: bytes given by the operator, or the
key manager (castellan, as configured in oslo.config), kept only in memory."""
from tclouds_openstack.blockstore import errors


def parse_key(raw):
    """A key is 32 raw bytes or 64 hexadecimal characters (a trailing newline is fine)."""
    text = raw.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode('ascii'))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(raw) == 32:
        return bytes(raw)
    raise errors.WrongKeyError('a key is 32 raw bytes or 64 hex characters, got %d bytes'
                               % len(raw))


def key_from_manager(key_id, config_files, context=None):
    """Fetch key ``key_id`` through castellan's configured key manager.

    Imported lazily: the CLI must not pay for castellan/oslo when keys come from a file.
    """
    from castellan.common import exception as castellan_exc
    from castellan import key_manager
    from oslo_config import cfg

    from tclouds_openstack.common import context as tc_context

    conf = cfg.ConfigOpts()
    conf(args=[], project='tclouds', default_config_files=list(config_files),
         default_config_dirs=[])
    manager = key_manager.API(conf)
    try:
        key = manager.get(context or tc_context.get_admin_context(), key_id)
    except castellan_exc.CastellanException as exc:
        raise errors.WrongKeyError('key manager refused key %s: %s' % (key_id, exc))
    return parse_key(key.get_encoded())
