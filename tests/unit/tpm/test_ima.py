"""IMA measurement list: parsing, template data, replay, writing (tpm/ima.py)."""
import hashlib
import struct

import pytest

from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import ima

ImaLogError = errors.ImaLogError

FILE_HASH = hashlib.sha256(b'contents').digest()
SIG = bytes.fromhex('030204a1b2c3d40100') + b'\x5a' * 256     # signature_v2_hdr + RSA sig


def ng_template(alg, digest, path, *extra):
    """Template data written out by hand from Documentation/security/IMA-templates.rst."""
    fields = [alg.encode() + b':\x00' + digest, path + b'\x00'] + list(extra)
    return b''.join(struct.pack('<I', len(f)) + f for f in fields)


def line(template_name, data, fields, pcr=10):
    return '%d %s %s %s' % (pcr, hashlib.sha1(data).hexdigest(), template_name, fields)


def test_ima_ng_line_parses_and_template_data_is_the_kernels():
    data = ng_template('sha256', FILE_HASH, b'/usr/bin/python3')
    [entry] = ima.parse_ima_log(line('ima-ng', data, 'sha256:%s /usr/bin/python3'
                                     % FILE_HASH.hex()) + '\n')
    assert (entry.line, entry.pcr, entry.template_name) == (1, 10, 'ima-ng')
    assert (entry.digest_algorithm, entry.file_digest, entry.path) == (
        'sha256', FILE_HASH, '/usr/bin/python3')
    assert entry.template_hash == hashlib.sha1(data).digest()
    assert entry.signature is None
    assert ima.template_data(entry) == data
    assert ima.template_hash_matches(entry)
    assert ima.template_hashes(entry) == {'sha1': hashlib.sha1(data).digest(),
                                          'sha256': hashlib.sha256(data).digest()}


def test_paths_with_spaces_and_non_utf8_bytes_round_trip():
    raw_path = b'/var/lib/my app/caf\xe9 \xff.bin'
    data = ng_template('sha1', bytes(20), raw_path)
    text = line('ima-ng', data, 'sha1:%s ' % ('00' * 20)).encode() + raw_path + b'\n'
    [entry] = ima.parse_ima_log(text)
    assert entry.path.encode('utf-8', 'surrogateescape') == raw_path
    assert ima.template_data(entry) == data
    assert ima.marshal([entry]).encode('utf-8', 'surrogateescape') == text
    # a str input with the same escapes parses the same
    assert ima.parse_ima_log(text.decode('utf-8', 'surrogateescape')) == [entry]


def test_ima_sig_with_and_without_signature():
    with_sig = ng_template('sha256', FILE_HASH, b'/usr/bin/a b', SIG)
    without = ng_template('sha256', FILE_HASH, b'/usr/bin/c', b'')
    text = '\n'.join([
        line('ima-sig', with_sig, 'sha256:%s /usr/bin/a b %s' % (FILE_HASH.hex(), SIG.hex())),
        # ima_fs.c prints the separator before the empty sig field: a trailing space
        line('ima-sig', without, 'sha256:%s /usr/bin/c ' % FILE_HASH.hex())])
    first, second = ima.parse_ima_log(text)
    assert (first.path, first.signature) == ('/usr/bin/a b', SIG)
    assert (second.path, second.signature, second.line) == ('/usr/bin/c', None, 2)
    assert ima.template_data(first) == with_sig
    assert ima.template_data(second) == without
    assert ima.marshal([first, second]) == text + '\n'


def test_ima_sig_hex_looking_last_word_that_is_not_a_signature_stays_in_the_path():
    path = b'/tmp/x deadbeef'
    data = ng_template('sha256', FILE_HASH, path, b'')
    [entry] = ima.parse_ima_log(line('ima-sig', data, 'sha256:%s /tmp/x deadbeef'
                                     % FILE_HASH.hex()))
    assert (entry.path, entry.signature) == ('/tmp/x deadbeef', None)
    assert ima.template_hash_matches(entry)


def test_ima_buf_and_legacy_ima():
    buf = b'BOOT_IMAGE=/vmlinuz root=/dev/sda1'
    data = ng_template('sha256', hashlib.sha256(buf).digest(), b'kexec-cmdline', buf)
    legacy = hashlib.sha1(b'x').digest() + b'/sbin/init'.ljust(256, b'\x00')
    buf_entry, ima_entry = ima.parse_ima_log('\n'.join([
        line('ima-buf', data, 'sha256:%s kexec-cmdline %s'
             % (hashlib.sha256(buf).hexdigest(), buf.hex())),
        line('ima', legacy, '%s /sbin/init' % hashlib.sha1(b'x').hexdigest())]))
    assert (buf_entry.path, buf_entry.buffer) == ('kexec-cmdline', buf)
    assert ima.template_data(buf_entry) == data
    assert (ima_entry.digest_algorithm, ima_entry.path) == ('sha1', '/sbin/init')
    assert ima.template_data(ima_entry) == legacy
    assert ima.template_hash_matches(buf_entry) and ima.template_hash_matches(ima_entry)


def test_make_and_format_entry_match_parse():
    entries = [ima.make_entry('boot_aggregate', FILE_HASH),
               ima.make_entry('/usr/bin/signed tool', FILE_HASH, template_name='ima-sig',
                              signature=SIG),
               ima.make_entry('/usr/bin/unsigned', FILE_HASH, template_name='ima-sig'),
               ima.make_entry('/usr/lib/x.so', hashlib.sha512(b'x').digest(), 'sha512'),
               ima.make_entry('/sbin/init', hashlib.sha1(b'x').digest(), template_name='ima'),
               ima.make_entry('/tmp/written', bytes(32), violation=True)]
    parsed = ima.parse_ima_log(ima.marshal(entries))
    assert [e.line for e in parsed] == [1, 2, 3, 4, 5, 6]
    assert [e.__class__(**{**vars(e), 'line': 0}) for e in parsed] == entries
    assert all(ima.template_hash_matches(e) for e in parsed)
    with pytest.raises(ImaLogError, match='newline'):
        ima.make_entry('/a\nb', FILE_HASH)


def _pcr(values, bank):
    out = bytes(hashlib.new(bank).digest_size)
    for value in values:
        out = hashlib.new(bank, out + value).digest()
    return out


def test_replay_uses_logged_sha1_and_hashes_template_data_for_other_banks():
    entries = [ima.make_entry('/f%d' % i, hashlib.sha256(b'%d' % i).digest()) for i in range(5)]
    values = ima.replay(entries)
    assert values['sha1'] == {10: _pcr([e.template_hash for e in entries], 'sha1')}
    assert values['sha256'] == {10: _pcr([hashlib.sha256(ima.template_data(e)).digest()
                                          for e in entries], 'sha256')}
    assert set(ima.replay(entries, banks=('sha384',))) == {'sha384'}


def test_violation_extends_all_ff():
    entries = [ima.make_entry('/ok', FILE_HASH),
               ima.make_entry('/tmp/open-writers', bytes(32), violation=True)]
    assert entries[1].is_violation
    values = ima.replay(entries)
    assert values['sha1'][10] == _pcr([entries[0].template_hash, b'\xff' * 20], 'sha1')
    assert values['sha256'][10] == _pcr(
        [hashlib.sha256(ima.template_data(entries[0])).digest(), b'\xff' * 32], 'sha256')


def test_incremental_replay_equals_full_replay_and_other_pcrs_are_kept_apart():
    entries = [ima.make_entry('/f%d' % i, FILE_HASH, pcr=10 if i % 3 else 11)
               for i in range(9)]
    full = ima.replay(entries)
    assert set(full['sha256']) == {10, 11}
    partial = ima.replay(entries[:4])
    assert ima.replay(entries[4:], start=partial) == full
    assert ima.replay([], start=full) == full
    with pytest.raises(ImaLogError, match='unknown PCR bank'):
        ima.replay(entries, banks=('md5',))


def test_rewritten_file_digest_is_detected_by_template_hash_check():
    good = ima.make_entry('/usr/bin/tool', hashlib.sha256(b'evil').digest())
    forged = good.__class__(**{**vars(good), 'file_digest': FILE_HASH})
    assert not ima.template_hash_matches(forged)
    # the sha1 replay cannot see it (logged hash unchanged); the sha256 bank does
    assert ima.replay([forged])['sha1'] == ima.replay([good])['sha1']
    assert ima.replay([forged])['sha256'] != ima.replay([good])['sha256']


@pytest.mark.parametrize('text, lineno, field', [
    ('10 abc ima-ng sha256:00 /x', 1, 'template-hash'),
    ('10 ' + '00' * 19 + ' ima-ng sha256:' + '00' * 32 + ' /x', 1, 'template-hash'),
    ('99 ' + '11' * 20 + ' ima-ng sha256:' + '00' * 32 + ' /x', 1, 'pcr'),
    ('x1 ' + '11' * 20 + ' ima-ng sha256:' + '00' * 32 + ' /x', 1, 'pcr'),
    ('10 ' + '11' * 20 + ' ima-foo sha256:' + '00' * 32 + ' /x', 1, 'template-name'),
    ('10 ' + '11' * 20 + ' ima-ng sha999:' + '00' * 32 + ' /x', 1, 'd-ng'),
    ('10 ' + '11' * 20 + ' ima-ng sha256:' + '00' * 31 + ' /x', 1, 'd-ng'),
    ('10 ' + '11' * 20 + ' ima-ng sha256' + '00' * 32 + ' /x', 1, 'd-ng'),
    ('10 ' + '11' * 20 + ' ima-ng sha256:' + 'zz' * 32 + ' /x', 1, 'd-ng'),
    ('10 ' + '11' * 20 + ' ima-ng sha256:' + '00' * 32, 1, 'n-ng'),
    ('10 ' + '11' * 20 + ' ima-ng sha256:' + '00' * 32 + ' ', 1, 'n-ng'),
    ('10 ' + '11' * 20 + ' ima ' + '00' * 19 + ' /x', 1, 'd'),
    ('10 ' + '11' * 20 + ' ima ' + '00' * 20 + ' /' + 'x' * 300, 1, 'n'),
    ('10 ' + '11' * 20 + ' ima-ng', 1, 'line'),
    ('10 ' + '11' * 20 + ' ima-ng sha256:' + '00' * 32 + ' /x\n\n', 2, 'line'),
    ('10 ' + '11' * 20 + ' ima-ng sha256:' + '00' * 32 + ' /x\r\n', 1, 'line'),
    ('10 ' + '11' * 20 + ' ima-ng sha256:' + '00' * 32 + ' /x\n10 zz', 2, 'line'),
    ('10 ' + '11' * 20 + ' ima-ng sha256:' + '00' * 32 + ' /x\n\ud800', 2, 'line'),
])
def test_malformed_lines_name_line_and_field(text, lineno, field):
    with pytest.raises(ImaLogError) as info:
        ima.parse_ima_log(text)
    assert (info.value.line, info.value.field) == (lineno, field), str(info.value)
    assert str(info.value).startswith('line %d (%s): ' % (lineno, field))


def test_empty_list_and_wrong_type():
    assert ima.parse_ima_log(b'') == []
    assert ima.parse_ima_log('') == []
    with pytest.raises(ImaLogError, match='expected bytes or str'):
        ima.parse_ima_log(12)
