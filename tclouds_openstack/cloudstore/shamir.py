"""Shamir secret sharing over a prime field (A. Shamir, "How to share a secret", CACM 1979).

DepSky-CA shares each version's AES key with threshold ``f + 1`` (Bessani et al. 2011,
section 3.3, "secret sharing"): any ``k`` shares recover the key, ``k - 1`` shares reveal
nothing about it. The field is GF(p) with p the Mersenne prime 2**521 - 1, large enough
for any secret of up to 65 bytes. Shares are ``(x, y)`` pairs with ``x`` in 1..255.
"""
import secrets

from tclouds_openstack.cloudstore import errors

#: Field modulus: the Mersenne prime M521.
PRIME = 2 ** 521 - 1
#: Largest secret in bytes (its integer value must stay below PRIME).
MAX_SECRET_BYTES = 65
#: Bytes of an encoded share's y coordinate.
SHARE_Y_BYTES = 66


def _eval_polynomial(coefficients, x):
    """Horner's rule: coefficients[0] + coefficients[1] x + ... (mod PRIME)."""
    result = 0
    for coefficient in reversed(coefficients):
        result = (result * x + coefficient) % PRIME
    return result


def split(secret, k, n):
    """Split ``secret`` (bytes) into ``n`` shares, any ``k`` of which recover it.

    Shamir 1979, section 2: pick a random polynomial q of degree k - 1 with q(0) = D and
    hand out D_i = q(i). Returns ``[(i, y_i), ...]`` for i = 1..n.
    """
    if not 1 <= k <= n <= 255:
        raise ValueError('need 1 <= k <= n <= 255, got k=%d n=%d' % (k, n))
    if len(secret) > MAX_SECRET_BYTES:
        raise ValueError('secret of %d bytes exceeds %d' % (len(secret), MAX_SECRET_BYTES))
    coefficients = [int.from_bytes(secret, 'big')]
    coefficients += [secrets.randbelow(PRIME) for _ in range(k - 1)]
    return [(x, _eval_polynomial(coefficients, x)) for x in range(1, n + 1)]


def interpolate(shares, x):
    """Lagrange interpolation of the share polynomial at ``x`` (mod PRIME).

    At x = 0 this is the secret; at x = i it rebuilds share i (used by repair).
    """
    value = 0
    for i, (x_i, y_i) in enumerate(shares):
        numerator = 1
        denominator = 1
        for j, (x_j, _) in enumerate(shares):
            if i != j:
                numerator = numerator * (x - x_j) % PRIME
                denominator = denominator * (x_i - x_j) % PRIME
        value = (value + y_i * numerator * pow(denominator, -1, PRIME)) % PRIME
    return value


def combine(shares, secret_length):
    """Recover the secret from ``k`` distinct shares by Lagrange interpolation at x = 0.

    Raises :class:`~.errors.FragmentError` for duplicate or out-of-range shares, or when
    the interpolated value cannot be a secret of ``secret_length`` bytes (which happens
    with high probability when fewer than ``k`` genuine shares are given).
    """
    xs = [x for x, _ in shares]
    if len(set(xs)) != len(xs):
        raise errors.FragmentError('share.x', 0, 'duplicate share indexes %s' % sorted(xs))
    for x, y in shares:
        if not 1 <= x <= 255:
            raise errors.FragmentError('share.x', 0, 'share index %d outside 1..255' % x)
        if not 0 <= y < PRIME:
            raise errors.FragmentError('share.y', 0, 'share value outside the field')
    secret = interpolate(shares, 0)
    if secret >= 256 ** secret_length:
        raise errors.FragmentError('share.y', 0, 'shares do not interpolate to a %d-byte '
                                   'secret (too few or inconsistent shares)' % secret_length)
    return secret.to_bytes(secret_length, 'big')


def encode_share(share):
    """``(x, y)`` -> 1 byte x + 66 bytes big-endian y."""
    x, y = share
    return bytes([x]) + y.to_bytes(SHARE_Y_BYTES, 'big')


def decode_share(data):
    """Inverse of :func:`encode_share`; raises :class:`~.errors.FragmentError`."""
    if len(data) != 1 + SHARE_Y_BYTES:
        raise errors.FragmentError('share', 0, 'share is %d bytes, expected %d'
                                   % (len(data), 1 + SHARE_Y_BYTES))
    x = data[0]
    y = int.from_bytes(data[1:], 'big')
    if x == 0 or y >= PRIME:
        raise errors.FragmentError('share', 0, 'share (x=%d) outside the field' % x)
    return x, y
