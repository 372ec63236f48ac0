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


class FormatVersionError(BlockstoreError):
    """The volume's format version does not allow what was asked (format 1: writing)."""


class AnchorError(BlockstoreError):
    """The freshness anchor is missing, forged, of another volume, or not monotonic."""


class IntegrityError(BlockstoreError):
    """A sector (or the whole volume when ``sector`` is None) failed a check.

    ``check`` names the failed check: ``tag`` (AEAD tag: modified, swapped or torn data),
    ``tree`` (the Merkle tree does not match the anchored root: the whole volume when
    ``sector`` is None, else the subtree holding ``sector``), ``rollback`` (a sector's
    record does not match its anchored Merkle leaf), ``key`` (written under a data key the
    header does not hold: an older or foreign header).
    """

    def __init__(self, sector, check, detail, last=None):
        self.sector = sector
        self.last = sector if last is None else last     # a failing subtree: a range
        self.check = check
        self.detail = detail
        if sector is None:
            where = 'volume'
        elif self.last != sector:
            where = 'sectors %d-%d' % (sector, self.last)
        else:
            where = 'sector %d' % sector
        super().__init__('%s: %s check failed: %s' % (where, check, detail))
