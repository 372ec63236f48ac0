"""TPM 2.0 quote verification: verify_quote vs the tpm2_checkquote subprocess (same quotes).

A swtpm makes real quotes with an RSA-2048 (RSASSA-SHA256) and a NIST P-256 (ECDSA-SHA256)
attestation key through TPMDevice, over 11 sha256 PCRs. Each quote is then verified:
by ``verify_quote`` in-process, from the raw files' bytes (AK TPM2B_PUBLIC parsed every
time, PCR file parsed every time: what the CLI and the attestation service do per quote),
and by the named baseline ``tpm2_checkquote`` (tpm2-tools 5.4) as a subprocess on the same
files, which is how Keylime verifies quotes. Prints quotes per second for both and the
ratio. Also the cost of making a quote on swtpm, for scale.
"""
import os
import statistics
import subprocess
import tempfile
import time

from tclouds_openstack.attestation.agent import swtpm
from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.tpm import quote
from tclouds_openstack.tpm import structures

SELECTION = {'sha256': [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}


def _make_quotes(device, ak, count):
    quotes, times = [], []
    for _ in range(count):
        nonce = os.urandom(20)
        t0 = time.perf_counter()
        attest, signature, values = device.quote(ak, nonce, SELECTION)
        times.append(time.perf_counter() - t0)
        quotes.append((nonce, attest, signature, structures.marshal_pcrs_file(SELECTION, values)))
    return quotes, statistics.median(times)


def _verify_rate(ak_public, quotes, rounds):
    t0 = time.perf_counter()
    for _ in range(rounds):
        for nonce, attest, signature, pcrs in quotes:
            quote.verify_quote(ak_public, attest, signature, nonce,
                               structures.parse_pcrs_file(pcrs).values)
    return rounds * len(quotes) / (time.perf_counter() - t0)


def _checkquote_rate(work, ak_public, quotes):
    ak_path = os.path.join(work, 'ak.pub')
    with open(ak_path, 'wb') as f:
        f.write(ak_public)
    paths = []
    for n, (nonce, attest, signature, pcrs) in enumerate(quotes):
        base = os.path.join(work, 'q%d' % n)
        for suffix, data in (('.msg', attest), ('.sig', signature), ('.pcrs', pcrs)):
            with open(base + suffix, 'wb') as f:
                f.write(data)
        paths.append((base, nonce))
    env = dict(os.environ, TSS2_LOG='all+none')
    t0 = time.perf_counter()
    for base, nonce in paths:
        subprocess.run(['tpm2_checkquote', '-u', ak_path, '-m', base + '.msg', '-s',
                        base + '.sig', '-f', base + '.pcrs', '-g', 'sha256', '-q', nonce.hex()],
                       check=True, stdout=subprocess.DEVNULL, env=env)
    return len(paths) / (time.perf_counter() - t0)


def run(quick=False):
    n_quotes = 20 if quick else 200
    rounds = 1 if quick else 10
    n_baseline = 10 if quick else 100
    rows = []
    with tempfile.TemporaryDirectory(prefix='bench-quote-') as work, swtpm.Swtpm() as tpm:
        with tpm_device.TPMDevice(tpm.tcti) as device:
            for key_type in ('rsa', 'ecc'):
                ak = device.create_ak(key_type)
                quotes, make_median = _make_quotes(device, ak, n_quotes)
                ours = _verify_rate(ak.public, quotes, rounds)
                baseline = _checkquote_rate(work, ak.public, quotes[:n_baseline])
                rows.append((key_type, make_median, ours, baseline))
    print('%-6s %16s %22s %22s %8s' % ('AK', 'quote on swtpm', 'verify_quote (q/s)',
                                       'tpm2_checkquote (q/s)', 'ratio'))
    for key_type, make_median, ours, baseline in rows:
        print('%-6s %13.2f ms %22.0f %22.1f %7.0fx'
              % (key_type.upper(), make_median * 1000, ours, baseline, ours / baseline))
    print('(verify_quote parses the AK, attest, signature and PCR file on every call; '
          'one core; baseline = tpm2_checkquote subprocess per quote, as Keylime does)')
    return rows
