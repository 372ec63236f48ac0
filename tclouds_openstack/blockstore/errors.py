"""Errors of the protected block format. Every parser and check here raises only these."""


class BlockstoreError(Exception):
    """Base class: the volume cannot be used as asked; the message says why."""


class HeaderError(BlockstoreError):
    """The volume header is malformed, corrupted or of an unsupported version."""

    def __init__(self, slot, field, detail):
        self.slot = slot
        self.field = field
        super().__init__('header slot %s, field %s: %s' % (slot, field, detail))


class WrongKeyError(BlockstoreError):
    """The key given does not open this volume (refused before any sector is read)."""


class AnchorError(BlockstoreError):
    """The freshness anchor is missing, forged, of another volume, or not monotonic."""


class IntegrityError(BlockstoreError):
    """A sector (or the whole volume when ``sector`` is None) failed a check.

    ``check`` names the failed check: ``tag`` (AEAD tag: modified, swapped or torn data),
    ``tree`` (Merkle tree/anchor mismatch of the whole volume), ``rollback`` (a sector's
    record is older than the anchored Merkle leaf), ``record`` (malformed sector record).
    """

    def __init__(self, sector, check, detail):
        self.sector = sector
        self.check = check
        self.detail = detail
        where = 'volume' if sector is None else 'sector %d' % sector
        super().__init__('%s: %s check failed: %s' % (where, check, detail))
