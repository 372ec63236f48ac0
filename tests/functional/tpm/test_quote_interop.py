"""Quote interoperability with real swtpm and tpm2-tools.

tpm2_quote files verify with verify_quote and the ``tclouds-attestation check-quote`` CLI;
quotes made through TPMDevice verify with tpm2_checkquote (files written by our
marshallers) and verify_quote; every tampering is rejected with its own check name.
"""
import hashlib
import json
import os
import pathlib
import socket
import sys

import pytest

from tclouds_openstack.attestation.agent import swtpm as swtpm_mod
from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.cmd import attestation as cli
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import quote
from tclouds_openstack.tpm import structures
from tests import watchdog

CLI = str(pathlib.Path(sys.executable).parent / 'tclouds-attestation')
SELECTION = 'sha256:0,1,2,3,4,5,6,7,10,16+sha1:10'
NONCE = '5ca1ab1e0011aa'
EVENT = hashlib.sha256(b'tclouds measured something').digest()


def expected_pcr10():
    return hashlib.sha256(b'\0' * 32 + EVENT).digest()


@pytest.fixture(scope='module')
def tools_quotes(tmp_path_factory, tpm2_tools):
    """One swtpm with RSA and ECC AKs made by tpm2_createak, and their tpm2_quote files.

    Each type also has a second AK's quote, for the 'signed by another key' case.
    """
    work = tmp_path_factory.mktemp('tools-quote')
    with swtpm_mod.Swtpm() as tpm:
        run = tpm2_tools
        run(tpm.tcti, 'tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub', cwd=work)
        run(tpm.tcti, 'tpm2_pcrextend', '10:sha256=%s' % EVENT.hex(), cwd=work)
        out = {}
        for alg, args in (('rsa', ['-G', 'rsa', '-s', 'rsassa']),
                          ('ecc', ['-G', 'ecc', '-s', 'ecdsa'])):
            for n in ('', '2'):
                d = work / (alg + n)
                d.mkdir()
                run(tpm.tcti, 'tpm2_createak', '-C', '../ek.ctx', '-c', 'ak.ctx', '-g', 'sha256',
                    *args, '-u', 'ak.pub', '-n', 'ak.name', cwd=d)
                run(tpm.tcti, 'tpm2_quote', '-c', 'ak.ctx', '-l', SELECTION, '-q', NONCE,
                    '-m', 'quote.msg', '-s', 'quote.sig', '-o', 'quote.pcrs', '-g', 'sha256',
                    cwd=d)
            out[alg] = work / alg
            out[alg + '-other'] = work / (alg + '2')
        out['ek'] = work / 'ek.pub'
        yield out


def _files(d):
    return {name: (d / name).read_bytes() for name in ('ak.pub', 'quote.msg', 'quote.sig',
                                                       'quote.pcrs', 'ak.name')}


def _cli_args(d, **override):
    args = {'--ak-pub': d / 'ak.pub', '--message': d / 'quote.msg',
            '--signature': d / 'quote.sig', '--pcrs': d / 'quote.pcrs', '--nonce': NONCE}
    args.update(override)
    argv = ['check-quote']
    for k, v in args.items():
        if v is not None:
            argv += [k, str(v)]
    return argv


def _run_cli_inprocess(capsys, argv):
    rc = cli.main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize('alg', ['rsa', 'ecc'])
def test_tools_quote_verifies(tools_quotes, alg):
    f = _files(tools_quotes[alg])
    ak = structures.parse_tpm2b_public(f['ak.pub'])
    assert ak.name == f['ak.name']           # our TPM Name equals the TPM's
    pcrs = structures.parse_pcrs_file(f['quote.pcrs'])
    verified = quote.verify_quote(f['ak.pub'], f['quote.msg'], f['quote.sig'],
                                  bytes.fromhex(NONCE), pcrs.values,
                                  required={'sha256': [0, 7, 10]})
    assert verified.pcr_values['sha256'][10] == expected_pcr10()
    assert verified.pcr_values['sha256'][0] == b'\0' * 32
    assert set(verified.pcr_values) == {'sha256', 'sha1'}
    assert verified.attest.clock_info.reset_count >= 0
    # Our marshaller writes byte-identical files to tpm2-tools'.
    assert structures.marshal_pcrs_file(pcrs.selection, pcrs.values) == f['quote.pcrs']
    assert structures.parse_tpms_attest(f['quote.msg']).marshal() == f['quote.msg']


@pytest.mark.parametrize('alg', ['rsa', 'ecc'])
def test_cli_accepts_tools_quote(tools_quotes, alg):
    d = tools_quotes[alg]
    result = watchdog.run([CLI] + _cli_args(d, **{'--pcr-list': 'sha256:0,1,10'}),
                          capture_output=True)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out['verified'] is True
    assert out['pcrs']['sha256']['10'] == expected_pcr10().hex()
    assert sorted(out['pcrs']['sha256'], key=int) == ['0', '1', '2', '3', '4', '5', '6', '7',
                                                      '10', '16']


def _tamper(path, out, mutate):
    data = bytearray(path.read_bytes())
    mutate(data)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize('alg', ['rsa', 'ecc'])
def test_rejections_each_name_their_check(tools_quotes, alg, tmp_path, capsys):
    d = tools_quotes[alg]
    f = _files(d)
    pcrs = structures.parse_pcrs_file(f['quote.pcrs'])
    values = pcrs.values

    altered = {b: dict(v) for b, v in values.items()}
    altered['sha256'][10] = hashlib.sha256(b'forged').digest()
    altered_file = tmp_path / 'altered.pcrs'
    altered_file.write_bytes(structures.marshal_pcrs_file(pcrs.selection, altered))

    fewer = [('sha256', [0, 1, 2, 3, 4, 5, 6, 7, 10]), ('sha1', [10])]
    fewer_file = tmp_path / 'fewer.pcrs'
    fewer_file.write_bytes(structures.marshal_pcrs_file(
        fewer, {'sha256': values['sha256'], 'sha1': values['sha1']}))
    more = [('sha256', [0, 1, 2, 3, 4, 5, 6, 7, 10, 16]), ('sha1', [0, 10])]
    more_file = tmp_path / 'more.pcrs'
    more_file.write_bytes(structures.marshal_pcrs_file(
        more, {'sha256': values['sha256'], 'sha1': {**values['sha1'], 0: b'\0' * 20}}))

    flipped_msg = _tamper(d / 'quote.msg', tmp_path / 'q.msg',
                          lambda b: b.__setitem__(-1, b[-1] ^ 1))
    other = tools_quotes[alg + '-other']

    cases = [
        ('nonce', {'--nonce': NONCE + '00'}),
        ('pcr_digest', {'--pcrs': altered_file}),
        ('signature', {'--message': flipped_msg}),
        ('signature', {'--message': other / 'quote.msg', '--signature': other / 'quote.sig'}),
        ('required_pcrs', {'--pcr-list': 'sha256:0,10,23'}),
        ('pcr_selection', {'--pcrs': fewer_file}),
        ('pcr_selection', {'--pcrs': more_file}),
        ('ak_attributes', {'--ak-pub': tools_quotes['ek']}),
    ]
    for check, override in cases:
        rc, out, err = _run_cli_inprocess(capsys, _cli_args(d, **override))
        assert rc == cli.EXIT_INVALID, (check, out, err)
        assert err.startswith('verification failed: %s:' % check), (check, err)
        assert out == ''
    # The same through the API: the exception names the check.
    with pytest.raises(errors.VerificationError) as e:
        quote.verify_quote(f['ak.pub'], f['quote.msg'], f['quote.sig'],
                           bytes.fromhex(NONCE)[:-1], values)
    assert e.value.check == 'nonce'
    with pytest.raises(errors.VerificationError) as e:   # the nonce as text is not the nonce
        quote.verify_quote(f['ak.pub'], f['quote.msg'], f['quote.sig'], NONCE, values)
    assert e.value.check == 'nonce'


def test_cli_exit_codes_from_the_real_binary(tools_quotes, tmp_path):
    """One failing and one malformed case through the installed console script."""
    d = tools_quotes['ecc']
    bad = watchdog.run([CLI] + _cli_args(d, **{'--nonce': '00'}), capture_output=True)
    assert bad.returncode == 1
    assert b'nonce' in bad.stderr and bad.stdout == b''
    junk = tmp_path / 'junk.pcrs'
    junk.write_bytes((d / 'quote.pcrs').read_bytes()[:-3])
    malformed = watchdog.run([CLI] + _cli_args(d, **{'--pcrs': junk}),
                             capture_output=True)
    assert malformed.returncode == 2
    assert malformed.stderr.startswith(b'malformed input: PCRS_FILE.')
    assert b'at offset' in malformed.stderr and b'Traceback' not in malformed.stderr


@pytest.mark.parametrize('target,content,field', [
    ('--signature', b'', 'TPMT_SIGNATURE.sigAlg at offset 0'),
    ('--pcrs', b'\x01\x00\x00\x00' + b'\x0b\x00\x03\xff', 'PCRS_FILE.pcr_select'),
    ('--ak-pub', b'\x00\x09\x00\x01', 'TPM2B_PUBLIC.size at offset 0'),
    ('--signature', b'\x00\x14\x00\x0b\x01\x00', 'TPMT_SIGNATURE.signature.rsa.sig'),
    ('--pcrs', 'missing', 'cannot read'),
])
def test_cli_malformed_inputs_exit_2(tools_quotes, tmp_path, capsys, target, content, field):
    d = tools_quotes['rsa']
    if content == 'missing':
        target_path = tmp_path / 'does-not-exist'
    else:
        target_path = tmp_path / 'bad'
        target_path.write_bytes(content)
    rc, out, err = _run_cli_inprocess(capsys, _cli_args(d, **{target: target_path}))
    assert rc == cli.EXIT_MALFORMED, err
    assert err.startswith('malformed input: ')
    assert field in err
    if content != 'missing':
        assert 'at offset' in err
    assert out == ''


def test_truncated_attest_is_a_signature_failure_not_a_crash(tools_quotes):
    """The signature is checked over the exact bytes before they are parsed."""
    f = _files(tools_quotes['ecc'])
    with pytest.raises(errors.VerificationError) as e:
        quote.verify_quote(f['ak.pub'], f['quote.msg'][:-5], f['quote.sig'],
                           bytes.fromhex(NONCE), structures.parse_pcrs_file(f['quote.pcrs']).values)
    assert e.value.check == 'signature'


@pytest.fixture(scope='module')
def device_tpm():
    with swtpm_mod.Swtpm() as tpm:
        device = tpm_device.TPMDevice(tpm.tcti)
        try:
            yield tpm, device
        finally:
            device.close()


@pytest.mark.parametrize('alg', ['rsa', 'ecc'])
def test_device_quote_verifies_with_tpm2_checkquote(device_tpm, tpm2_tools, tmp_path, alg):
    tpm, device = device_tpm
    ak = device.create_ak(alg)
    assert ak.name == device.ak_tpm_name(ak)
    device.pcr_extend(16, {'sha256': EVENT, 'sha1': hashlib.sha1(b'x').digest()})
    nonce = os.urandom(16)
    selection = {'sha256': list(range(0, 17)), 'sha1': [0, 16]}   # > 8 PCRs: chunked reads
    attest, signature, values = device.quote(ak, nonce, selection)

    verified = quote.verify_quote(ak.public, attest, signature, nonce, values,
                                  required={'sha256': [0, 16]})
    assert verified.pcr_values == values
    assert values['sha256'] == device.pcr_read({'sha256': range(17)})['sha256']

    (tmp_path / 'ak.pub').write_bytes(ak.public)
    (tmp_path / 'q.msg').write_bytes(attest)
    (tmp_path / 'q.sig').write_bytes(signature)
    (tmp_path / 'q.pcrs').write_bytes(structures.marshal_pcrs_file(selection, values))
    argv = ['tpm2_checkquote', '-u', 'ak.pub', '-m', 'q.msg', '-s', 'q.sig', '-f', 'q.pcrs',
            '-g', 'sha256', '-q', nonce.hex()]
    tpm2_tools('none', *argv, cwd=tmp_path)
    # The baseline really checks: a wrong nonce fails there too.
    assert tpm2_tools('none', *argv[:-1], '00' + nonce.hex(), cwd=tmp_path,
                      check=False).returncode != 0


def test_reboot_resets_pcrs_and_counts_resets(swtpm):
    with tpm_device.TPMDevice(swtpm.tcti) as device:
        ak = device.create_ak('ecc')
        device.pcr_extend(0, {'sha256': EVENT})
        nonce = os.urandom(8)
        attest, signature, values = device.quote(ak, nonce, {'sha256': [0]})
        before = quote.verify_quote(ak.public, attest, signature, nonce, values)
        assert before.pcr_values['sha256'][0] != b'\0' * 32
        public, private = ak.public, ak.private
    swtpm.reboot()
    with tpm_device.TPMDevice(swtpm.tcti) as device:
        ak = device.load_ak(public, private)       # the AK survives (re-derived EK)
        attest, signature, values = device.quote(ak, nonce, {'sha256': [0]})
        after = quote.verify_quote(public, attest, signature, nonce, values)
    assert after.pcr_values['sha256'][0] == b'\0' * 32
    assert after.attest.clock_info.reset_count == before.attest.clock_info.reset_count + 1


def test_many_swtpms_start_on_distinct_ports(swtpm_factory):
    tpms = [swtpm_factory() for _ in range(10)]
    ports = {t.port for t in tpms} | {t.ctrl_port for t in tpms}
    assert len(ports) == 20
    assert all(t.ctrl_port == t.port + 1 for t in tpms)
    with tpm_device.TPMDevice(tpms[-1].tcti) as device:
        assert len(device.pcr_read({'sha256': [0]})['sha256'][0]) == 32
    tpms[0].stop()
    assert tpms[0].proc is None


def test_tpm_errors_are_wrapped(device_tpm):
    _, device = device_tpm
    ak = device.create_ak('ecc')
    with pytest.raises(tpm_device.TPMDeviceError) as e:
        device.activate_credential(ak, b'\x00\x04\x00\x02\x00\x00', b'\x00\x02\x00\x00')
    assert 'ActivateCredential' in str(e.value)
    with pytest.raises(tpm_device.TPMDeviceError) as e:
        device.quote(ak, b'n' * 100, {'sha256': [0]})     # qualifying data too large
    assert 'nonce' in str(e.value)
    forged = device.load_ak(ak.public, b'\x00\x20' + b'\x01' * 32)   # not this TPM's blob
    with pytest.raises(tpm_device.TPMDeviceError) as e:
        device.quote(forged, b'n', {'sha256': [0]})
    assert e.value.rc is not None and str(e.value).startswith('Load AK: ')


def test_lost_port_race_is_retried(monkeypatch):
    """Another process binds port P between our probe and swtpm's bind: start() retries."""
    for _ in range(50):     # a port P held by "someone else", with P+1 free for ctrl
        busy, ctrl = socket.socket(), socket.socket()
        busy.bind(('127.0.0.1', 0))
        try:
            ctrl.bind(('127.0.0.1', busy.getsockname()[1] + 1))
            break
        except OSError:
            busy.close()
            ctrl.close()
    busy.listen(1)
    ctrl.listen(1)
    real = swtpm_mod._bind_port_pair
    handed = []

    def racy_pair():
        if handed:
            return real()
        handed.append(busy.getsockname()[1])
        return busy.getsockname()[1], ctrl
    monkeypatch.setattr(swtpm_mod, '_bind_port_pair', racy_pair)
    try:
        with swtpm_mod.Swtpm() as tpm:
            assert handed and tpm.port != handed[0]
            with tpm_device.TPMDevice(tpm.tcti) as device:
                assert device.pcr_read({'sha256': [1]})['sha256'][1] == b'\0' * 32
    finally:
        busy.close()


def test_swtpm_failure_is_reported(tmp_path):
    state = tmp_path / 'not-a-directory'
    state.write_text('x')
    with pytest.raises((swtpm_mod.SwtpmError, OSError)):
        swtpm_mod.Swtpm(str(state)).start()
    ca = swtpm_mod.LocalCA(str(tmp_path / 'ca'))
    with pytest.raises(swtpm_mod.SwtpmError) as e:
        ca.ca_bundle_pem()
    assert 'no certificates yet' in str(e.value)


def test_restart_of_kept_state_is_an_orderly_host_restart(tmp_path):
    clocks = []
    for _ in range(2):
        tpm = swtpm_mod.Swtpm(str(tmp_path / 'state')).start()
        try:
            with tpm_device.TPMDevice(tpm.tcti) as device:
                ak = device.create_ak('ecc')
                attest, signature, values = device.quote(ak, b'n', {'sha256': [0]})
            clocks.append(quote.verify_quote(ak.public, attest, signature, b'n',
                                             values).attest.clock_info)
        finally:
            tpm.stop()
        assert tpm.state_dir and (tmp_path / 'state').is_dir()   # a given state is kept
    assert clocks[1].reset_count == clocks[0].reset_count + 1
    assert clocks[1].safe and clocks[1].clock >= clocks[0].clock
