"""Keylime 7.14's own appraisal (``Tpm().check_quote``) run on this project's evidence.

A reference for the differential test and the appraisal benchmark, not a runtime
dependency: it needs the ``keylime`` package (installed with a hand-written dependency list
and Debian's ``python3-gpg``, see tools/bootstrap.sh), ``tpm2_eventlog`` on PATH and
Keylime's configuration files (``../shared/data/keylime-conf`` in this checkout's tests).
Keylime reads the measured-boot policy engine from its verifier configuration, so
:func:`setup` writes a copy with ``measured_boot_policy_name = example`` into a scratch
directory and points Keylime's environment variables at it before the first import;
:func:`check` selects another engine per call through Keylime's environment override
(``KEYLIME_VERIFIER_MEASURED_BOOT_POLICY_NAME``).
"""
import base64
import copy
import json
import logging
import os
import shutil

from tclouds_openstack.tpm import structures

_READY = None


class KeylimeUnavailable(Exception):
    pass


def setup(conf_dir, scratch_dir, policy_engine='example'):
    """Configure Keylime from ``conf_dir`` (its generated configs) once per process."""
    global _READY
    if _READY is not None:
        return _READY
    os.makedirs(scratch_dir, exist_ok=True)
    with open(os.path.join(conf_dir, 'verifier.conf')) as f:
        verifier = f.read().replace('measured_boot_policy_name = accept-all',
                                    'measured_boot_policy_name = %s' % policy_engine)
    with open(os.path.join(scratch_dir, 'verifier.conf'), 'w') as f:
        f.write(verifier)
    shutil.copy(os.path.join(conf_dir, 'logging.conf'), scratch_dir)
    os.environ['KEYLIME_DIR'] = scratch_dir
    os.environ['KEYLIME_VERIFIER_CONFIG'] = os.path.join(scratch_dir, 'verifier.conf')
    os.environ['KEYLIME_LOGGING_CONFIG'] = os.path.join(scratch_dir, 'logging.conf')
    try:
        from keylime.common import algorithms
        from keylime.mba import mba
        from keylime.tpm import tpm_main
    except ImportError as e:
        raise KeylimeUnavailable('keylime is not installed: %s' % e)
    # Keylime logs every failed check at ERROR; the callers read the returned Failure.
    logging.getLogger('keylime').setLevel(logging.CRITICAL)
    mba.load_imports()
    _READY = (tpm_main.Tpm, algorithms.Hash.SHA256)
    return _READY


def quote_string(attest, signature, pcr_values, bank='sha256'):
    """Keylime's ``r<attest>:<sig>:<pcrs>`` with the tpm2-tools PCR file."""
    selection = {bank: sorted(pcr_values[bank])}
    pcrs = structures.marshal_pcrs_file(selection, pcr_values)
    return 'r' + ':'.join(base64.b64encode(x).decode() for x in (attest, signature, pcrs))


ENGINE_VARIABLE = 'KEYLIME_VERIFIER_MEASURED_BOOT_POLICY_NAME'


def check(evidence, nonce, tpm_policy=None, runtime_policy=None, mb_refstate=None,
          mb_engine='example'):
    """Keylime's verdict: (passed, [event ids]) or (None, 'raised <error>').

    ``nonce`` must be ASCII (Keylime passes it as text); the policies are Keylime's JSON
    documents (deep-copied: Keylime mutates the runtime policy); ``mb_engine`` is the
    measured-boot engine that reads ``mb_refstate``.
    """
    if _READY is None:
        raise KeylimeUnavailable('call setup() first')
    tpm_class, sha256 = _READY
    quote = quote_string(evidence.attest, evidence.signature, evidence.pcr_values)
    ima = evidence.ima_log
    if isinstance(ima, bytes):
        ima = ima.decode('utf-8', 'surrogateescape')
    os.environ[ENGINE_VARIABLE] = mb_engine
    try:
        failure = tpm_class().check_quote(
            None, nonce.decode('ascii'), None, quote, evidence.ak_public,
            copy.deepcopy(tpm_policy or {}), ima,
            copy.deepcopy(runtime_policy) if runtime_policy is not None else None, sha256,
            None, evidence.uefi_log,
            json.dumps(mb_refstate) if mb_refstate is not None else None,
            mb_engine if mb_refstate is not None else 'accept-all', count=0)
    except Exception as e:  # Keylime raises on some inputs; that is a finding, not a crash
        return None, 'raised %s' % type(e).__name__
    finally:
        del os.environ[ENGINE_VARIABLE]
    if not failure:
        return True, []
    return False, sorted({event.event_id for event in failure.events})
