"""``tclouds-attestation``: operator commands over the TPM evidence core.

Subcommands read exactly the files the TPM tools write (``tpm2_createak -u``,
``tpm2_quote -m/-s/-o``, ``binary_bios_measurements``, ``ascii_runtime_measurements``).
Exit codes: 0 valid (JSON on stdout), 1 a verification check failed, 2 unreadable or
malformed input. The reason goes to stderr in one line; never a traceback.
"""
import argparse
import json
import sys

from tclouds_openstack.tpm import constants
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import eventlog
from tclouds_openstack.tpm import ima
from tclouds_openstack.tpm import quote
from tclouds_openstack.tpm import structures

EXIT_OK, EXIT_INVALID, EXIT_MALFORMED = 0, 1, 2


class InputError(Exception):
    """A command-line argument or file that cannot be used (exit 2)."""


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as e:
        raise InputError('cannot read %s: %s' % (path, e.strerror or e))


def parse_pcr_list(text):
    """``sha256:0,1,2+sha1:10`` (tpm2-tools syntax) -> {'sha256': [0, 1, 2], 'sha1': [10]}."""
    selection = {}
    for part in text.split('+'):
        bank, sep, indexes = part.partition(':')
        if not sep or bank not in constants.HASH_ALGORITHMS_BY_NAME:
            raise InputError('--pcr-list %r: expected <bank>:<index>,... with bank one of %s'
                             % (text, ', '.join(sorted(constants.HASH_ALGORITHMS_BY_NAME))))
        try:
            values = [int(i) for i in indexes.split(',') if i.strip() != '']
        except ValueError:
            raise InputError('--pcr-list %r: PCR indexes must be integers' % text)
        if not values or any(not 0 <= i < 24 for i in values):
            raise InputError('--pcr-list %r: PCR indexes must be 0..23' % text)
        selection.setdefault(bank, []).extend(values)
    return selection


def parse_nonce(text):
    try:
        return bytes.fromhex(text[2:] if text.lower().startswith('0x') else text)
    except ValueError:
        raise InputError('--nonce %r is not hexadecimal' % text)


def pcr_values_json(values):
    """{bank: {index: bytes}} -> {bank: {"index": "hex"}} in index order."""
    return {bank: {str(i): values[bank][i].hex() for i in sorted(values[bank])}
            for bank in sorted(values)}


def cmd_check_quote(args):
    verified = quote.verify_quote(
        _read(args.ak_pub), _read(args.message), _read(args.signature),
        parse_nonce(args.nonce), structures.parse_pcrs_file(_read(args.pcrs)).values,
        required=parse_pcr_list(args.pcr_list) if args.pcr_list else None)
    return {'verified': True,
            'reset_count': verified.attest.clock_info.reset_count,
            'restart_count': verified.attest.clock_info.restart_count,
            'pcrs': pcr_values_json(verified.pcr_values)}


def cmd_replay_eventlog(args):
    return {'pcrs': pcr_values_json(eventlog.replay(eventlog.parse_eventlog(_read(args.file))))}


def cmd_replay_ima(args):
    entries = ima.parse_ima_log(_read(args.file))
    return {'entries': len(entries), 'pcrs': pcr_values_json(ima.replay(entries))}


def build_parser():
    parser = argparse.ArgumentParser(prog='tclouds-attestation', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('check-quote', help='verify a TPM 2.0 quote made by tpm2_quote')
    p.add_argument('--ak-pub', required=True, help='AK public key (TPM2B_PUBLIC, tpm2_createak -u)')
    p.add_argument('--message', required=True, help='TPMS_ATTEST (tpm2_quote -m)')
    p.add_argument('--signature', required=True, help='TPMT_SIGNATURE (tpm2_quote -s)')
    p.add_argument('--pcrs', required=True, help='PCR values file (tpm2_quote -o)')
    p.add_argument('--nonce', required=True, help='qualifying data, hex (tpm2_quote -q)')
    p.add_argument('--pcr-list', help='PCRs the quote must cover, e.g. sha256:0,1,2,10')
    p.set_defaults(func=cmd_check_quote)

    p = sub.add_parser('replay-eventlog', help='PCR values implied by a TCG2 UEFI event log')
    p.add_argument('file', help='binary_bios_measurements')
    p.set_defaults(func=cmd_replay_eventlog)

    p = sub.add_parser('replay-ima', help='PCR 10 values implied by an IMA measurement list')
    p.add_argument('file', help='ascii_runtime_measurements (ima-ng, ima-sig)')
    p.set_defaults(func=cmd_replay_ima)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except errors.VerificationError as e:
        print('verification failed: %s' % e, file=sys.stderr)
        return EXIT_INVALID
    except (errors.TPMError, InputError) as e:
        print('malformed input: %s' % e, file=sys.stderr)
        return EXIT_MALFORMED
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
