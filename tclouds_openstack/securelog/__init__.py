"""Secure logging: a tamper-evident, forward-secure, auditor-verifiable event log.

Pure core (no I/O, no database, no oslo.config): :mod:`.merkle` (RFC 9162 Merkle tree and
proofs), :mod:`.sealing` (forward-secure per-source MAC key evolution and the entry format),
:mod:`.checkpoint` (C2SP signed-note / tlog-checkpoint signed tree heads, witness
cosignatures), :mod:`.confidential` (optional per-tenant AEAD of entry payloads) and
:mod:`.audit` (the full audit from genesis). Adapters live in their own modules: ``store``
(oslo.db), ``driver`` / ``handler`` (ingestion), ``api`` (REST), ``exporters``.
"""
