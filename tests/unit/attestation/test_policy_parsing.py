"""Policy parsing: every malformed policy is a PolicyError naming the field.

Explicit cases of each kind; tests/unit/attestation/test_fuzz_policy.py generates more.
"""
import copy
import json

import pytest

from tclouds_openstack.attestation.appraisal import policy as pol
from tests.unit.attestation import crafted_boot

OWNER = '77fa9abd-0359-4d32-bd60-28f4e78f784b'
DIGEST = '00' * 32


def refstate():
    return crafted_boot.good_refstate()


def runtime():
    return {'meta': {'version': 1, 'generator': 3, 'timestamp': ''}, 'release': 0,
            'digests': {'/bin/sh': ['aa' * 32]}, 'excludes': ['/tmp/.*'], 'keyrings': {},
            'ima': {'ignored_keyrings': [], 'log_hash_alg': 'sha1', 'dm_policy': None},
            'ima-buf': {}, 'verification-keys': ''}


def error(parse, document):
    with pytest.raises(pol.PolicyError) as err:
        parse(document)
    assert str(err.value).startswith(err.value.field + ': ')
    return err.value


@pytest.mark.parametrize('key', [
    '\u0663',            # ARABIC-INDIC DIGIT THREE: int() reads 3
    '\uff13',            # FULLWIDTH DIGIT THREE
    '\u00b3',            # SUPERSCRIPT THREE: isdigit() but int() raises
    '+3', '-0', ' 3', '3 ', '3\n', '0x3', '3.0', '1_0', '', '24', '99', '100'])
def test_pcr_index_is_ascii_digits_0_to_23(key):
    err = error(pol.parse_tpm_policy, {key: [DIGEST]})
    assert err.field.startswith('tpm_policy')
    assert 'PCR index' in err.reason


def test_pcr_index_written_twice_is_refused():
    err = error(pol.parse_tpm_policy, {'7': [DIGEST], '07': [DIGEST]})
    assert err.field == 'tpm_policy.07' and 'twice' in err.reason


def test_duplicate_json_key_is_refused_not_last_one_wins():
    text = '{"7": ["%s"], "7": ["%s"]}' % (DIGEST, 'ff' * 32)
    err = error(pol.parse_tpm_policy, text)
    assert err.field == 'tpm_policy' and '"7" appears twice' in err.reason
    nested = json.dumps(runtime()).replace('"/bin/sh": [', '"/bin/sh": ["%s"], "/bin/sh": ['
                                           % ('bb' * 32))
    assert 'appears twice' in error(pol.parse_runtime_policy, nested).reason


@pytest.mark.parametrize('mask', ['0x', 'zz', ' 0x1', '0x1_0', '+0x1', '0x1000000', -1,
                                  1.5, True, [1], {}])
def test_mask_is_a_hex_bit_mask_of_pcrs(mask):
    assert error(pol.parse_tpm_policy, {'mask': mask}).field == 'tpm_policy.mask'


@pytest.mark.parametrize('path,value,field', [
    (('digests', '/bin/sh'), 'aa' * 32, 'runtime_policy.digests["/bin/sh"]'),
    (('digests', '/bin/sh'), [['aa' * 32]], 'runtime_policy.digests["/bin/sh"][0]'),
    (('digests', '/bin/sh'), [], 'runtime_policy.digests["/bin/sh"]'),
    (('digests',), ['/bin/sh'], 'runtime_policy.digests'),
    (('excludes',), '/tmp/.*', 'runtime_policy.excludes'),
    (('excludes',), [['/tmp']], 'runtime_policy.excludes[0]'),
    (('excludes',), ['x(?i)y'], 'runtime_policy.excludes[0]'),
    (('excludes',), ['a{99999999999}'], 'runtime_policy.excludes[0]'),
    (('excludes',), ['(?P<a>x)', '(?P<a>y)'], 'runtime_policy.excludes'),
    (('ima', 'log_hash_alg'), ['sha1'], 'runtime_policy.ima.log_hash_alg'),
    (('ima', 'log_hash_alg'), {'sha1': 1}, 'runtime_policy.ima.log_hash_alg'),
    (('ima', 'ignored_keyrings'), '.ima', 'runtime_policy.ima.ignored_keyrings'),
    (('ima', 'ignored_keyrings'), [['.ima']], 'runtime_policy.ima.ignored_keyrings[0]'),
    (('ima', 'dm_policy'), 'x', 'runtime_policy.ima.dm_policy'),
    (('ima',), [], 'runtime_policy.ima'),
    (('meta', 'version'), True, 'runtime_policy.meta.version'),
    (('meta', 'version'), '1', 'runtime_policy.meta.version'),
    (('meta', 'generator'), [3], 'runtime_policy.meta.generator'),
    (('meta', 'timestamp'), 5, 'runtime_policy.meta.timestamp'),
    (('release',), -1, 'runtime_policy.release'),
    (('keyrings',), {'.ima': 'aa' * 32}, 'runtime_policy.keyrings[".ima"]'),
    (('ima-buf',), {'dm': ['xyz']}, 'runtime_policy.ima-buf.dm[0]'),
    (('verification-keys',), [], 'runtime_policy.verification-keys'),
])
def test_runtime_policy_errors_name_the_field(path, value, field):
    document = runtime()
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert error(pol.parse_runtime_policy, document).field == field


def _set(document, path, value):
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize('path,value,field', [
    (('has_secureboot',), 'true', 'mb_refstate.has_secureboot'),
    (('has_secureboot',), 1, 'mb_refstate.has_secureboot'),
    (('pk',), {'SignatureOwner': OWNER}, 'mb_refstate.pk'),
    (('pk',), [[OWNER, DIGEST]], 'mb_refstate.pk[0]'),
    (('pk',), [{'SignatureOwner': [OWNER], 'SignatureData': DIGEST}],
     'mb_refstate.pk[0].SignatureOwner'),
    (('pk',), [{'SignatureOwner': OWNER}], 'mb_refstate.pk[0]'),
    (('kek',), [{'SignatureOwner': 'not-a-guid', 'SignatureData': DIGEST}],
     'mb_refstate.kek[0].SignatureOwner'),
    (('db',), [{'SignatureOwner': '{%s}' % OWNER, 'SignatureData': DIGEST}],
     'mb_refstate.db[0].SignatureOwner'),
    (('db',), [{'SignatureOwner': OWNER.replace('-', ''), 'SignatureData': DIGEST}],
     'mb_refstate.db[0].SignatureOwner'),
    (('dbx',), [{'SignatureOwner': 'urn:uuid:' + OWNER, 'SignatureData': DIGEST}],
     'mb_refstate.dbx[0].SignatureOwner'),
    (('vendor_db',), [{'SignatureOwner': OWNER + ' ', 'SignatureData': DIGEST}],
     'mb_refstate.vendor_db[0].SignatureOwner'),
    (('vendor_db',), [{'SignatureOwner': OWNER, 'SignatureData': ['00']}],
     'mb_refstate.vendor_db[0].SignatureData'),
    (('mokdig',), [{'sha256': ['0x' + DIGEST]}], 'mb_refstate.mokdig[0].sha256'),
    (('mokdig',), [{'sha1': '0x' + DIGEST}], 'mb_refstate.mokdig[0].sha1'),
    (('mokxdig',), ['0x' + DIGEST], 'mb_refstate.mokxdig[0]'),
    (('mokxdig',), [{'md5': DIGEST}], 'mb_refstate.mokxdig[0].md5'),
    (('scrtm_and_bios', 0, 'scrtm'), '0x' + DIGEST, 'mb_refstate.scrtm_and_bios[0].scrtm'),
    (('scrtm_and_bios', 0, 'scrtm'), {'sha256': '0x12'},
     'mb_refstate.scrtm_and_bios[0].scrtm.sha256'),
    (('scrtm_and_bios', 0, 'platform_firmware'), {'sha256': '0x' + DIGEST},
     'mb_refstate.scrtm_and_bios[0].platform_firmware'),
    (('scrtm_and_bios',), ['x'], 'mb_refstate.scrtm_and_bios[0]'),
    (('kernels',), {'0': {}}, 'mb_refstate.kernels'),
    (('kernels',), ['x'], 'mb_refstate.kernels[0]'),
    (('kernels', 0, 'kernel_cmdline'), ['root=.*'], 'mb_refstate.kernels[0].kernel_cmdline'),
    (('kernels', 0, 'kernel_cmdline'), 'a{4294967296}',
     'mb_refstate.kernels[0].kernel_cmdline'),
    (('kernels', 0, 'initrd_plain_sha256'), ['0x' + DIGEST],
     'mb_refstate.kernels[0].initrd_plain_sha256'),
    (('kernels', 0, 'shim_authcode_sha256'), '0x' + '00' * 20,
     'mb_refstate.kernels[0].shim_authcode_sha256'),
    (('kernels', 0, 'grub_authcode_sha256'), '0x' + '0' * 63,
     'mb_refstate.kernels[0].grub_authcode_sha256'),
])
def test_refstate_errors_name_the_field(path, value, field):
    assert error(pol.parse_mb_refstate, _set(refstate(), path, value)).field == field


def test_guid_in_any_case_is_normalised():
    document = refstate()
    document['pk'] = [{'SignatureOwner': OWNER.upper(), 'SignatureData': '0X' + 'AB' * 20}]
    assert pol.parse_mb_refstate(document).pk == {(OWNER, 'ab' * 20)}


@pytest.mark.parametrize('document', [
    b'\xff\xfe', '{not json', '[]', '"x"', 'null', '1', '[' * 100000, '{"a":' * 100000,
    '{"7": ["00"]}' + ' ' * 3 + '}', '9' * 5000])
@pytest.mark.parametrize('parse', [pol.parse_tpm_policy, pol.parse_runtime_policy,
                                   pol.parse_mb_refstate])
def test_text_that_is_no_json_object_is_a_policy_error(parse, document):
    err = error(parse, document)
    assert err.field in ('tpm_policy', 'runtime_policy', 'mb_refstate')


def test_parsing_never_mutates_the_document():
    for document, parse in ((refstate(), pol.parse_mb_refstate),
                            (runtime(), pol.parse_runtime_policy),
                            ({'7': [DIGEST], 'mask': '0x80'}, pol.parse_tpm_policy)):
        before = copy.deepcopy(document)
        parse(document)
        assert document == before
