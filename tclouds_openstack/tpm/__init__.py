"""Pure TPM 2.0 evidence core: structures, quotes, credentials, event logs.

Depends on ``cryptography`` only; no I/O, no oslo. Every function takes bytes and returns
values or raises an exception from :mod:`tclouds_openstack.tpm.errors`; nothing else may
escape on any input. Names follow TPM 2.0 Part 2 and the TCG PC Client specifications.
"""
