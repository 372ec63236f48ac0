"""DepSky-CA cloud-of-clouds storage (Bessani et al., EuroSys 2011; ACM TOS 2013).

Pure protocol: takes bytes and backend objects (:mod:`.backends.base`), returns values or
raises :class:`.errors.CloudStoreError`. No oslo.config, no WSGI; the only I/O is through
the backend objects it is given, in parallel through the executor its caller supplies.

Modules: :mod:`.shamir` (key shares), :mod:`.coding` (AEAD + erasure code + the value
object each cloud stores), :mod:`.metadata` (signed per-version metadata),
:mod:`.protocol` (Byzantine quorum write, read, delete and repair).
"""
