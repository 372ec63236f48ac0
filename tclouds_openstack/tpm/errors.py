"""The exceptions of the TPM evidence core: one type per module family.

- :class:`ParseError`: bytes that are not the structure they claim to be (TPM
  structures, the tpm2-tools PCR file). Names the structure, field and byte offset.
- :class:`EventLogError`: a malformed TCG2 UEFI event log; names the event index and offset.
- :class:`ImaLogError`: a malformed IMA measurement list; names the line.
- :class:`VerificationError`: well-formed evidence that fails a check (signature, nonce,
  PCR digest, certificate chain, ...); names the check.

All derive from :class:`TPMError`, so a caller can fail closed on any of them.
"""


class TPMError(Exception):
    """Base of every error the TPM core raises."""


class ParseError(TPMError):
    """Malformed TPM structure: ``<structure>.<field> at offset N: reason``."""

    def __init__(self, structure, field, offset, reason):
        self.structure = structure
        self.field = field
        self.offset = offset
        self.reason = reason
        super().__init__('%s.%s at offset %d: %s' % (structure, field, offset, reason))


class EventLogError(TPMError):
    """Malformed UEFI event log: ``event N at offset M (field): reason``."""

    def __init__(self, index, offset, field, reason):
        self.index = index
        self.offset = offset
        self.field = field
        self.reason = reason
        super().__init__('event %d at offset %d (%s): %s' % (index, offset, field, reason))


class ImaLogError(TPMError):
    """Malformed IMA ascii_runtime_measurements: ``line N (field): reason``."""

    def __init__(self, line, field, reason):
        self.line = line
        self.field = field
        self.reason = reason
        super().__init__('line %d (%s): %s' % (line, field, reason))


class VerificationError(TPMError):
    """Evidence that parses but fails a check: ``<check>: reason``."""

    def __init__(self, check, reason):
        self.check = check
        self.reason = reason
        super().__init__('%s: %s' % (check, reason))
