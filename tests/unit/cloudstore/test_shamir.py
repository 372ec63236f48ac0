import itertools
import os

import pytest

from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import shamir


def test_any_k_shares_recover_the_secret():
    secret = os.urandom(32)
    shares = shamir.split(secret, 2, 4)
    for pair in itertools.combinations(shares, 2):
        assert shamir.combine(list(pair), 32) == secret


def test_one_share_does_not_determine_the_secret():
    # With threshold 2 each share is q(i) = D + a*i for a random a: the same share value
    # is consistent with every secret, so interpolating one share alone gives y itself,
    # which is the secret only by chance.
    secret = os.urandom(32)
    shares = shamir.split(secret, 2, 4)
    for share in shares:
        assert share[1] != int.from_bytes(secret, 'big')
    with pytest.raises(errors.FragmentError):
        shamir.combine([shares[0]], 32)


def test_interpolate_rebuilds_a_missing_share():
    shares = shamir.split(b'k' * 32, 2, 4)
    assert shamir.interpolate(shares[:2], 4) == shares[3][1]


def test_encoding_round_trip_and_errors():
    share = shamir.split(b'x' * 32, 2, 4)[2]
    assert shamir.decode_share(shamir.encode_share(share)) == share
    with pytest.raises(errors.FragmentError, match='share is 3 bytes'):
        shamir.decode_share(b'abc')
    with pytest.raises(errors.FragmentError, match='outside the field'):
        shamir.decode_share(b'\x00' + b'\x00' * shamir.SHARE_Y_BYTES)
    with pytest.raises(errors.FragmentError, match='duplicate'):
        shamir.combine([share, share], 32)
