"""The compute host names the attestation service admits: one host, one spelling.

A host name binds an EK, Keystone credentials and verdicts to a Nova compute host, so it
must mean one host wherever it is compared: in Nova and Placement (exactly on SQLite and
PostgreSQL, ignoring letter case and trailing spaces on MySQL's default collation), in the
batched verdict query (``GET /v1/verdicts?hosts=a,b``, comma-separated), in the operator's
dict options (``host:value,...``) and in an admin's eyes when approving a registration. A
name is admitted only as an RFC 1123 host name or FQDN (Nova's ``[DEFAULT] host``): ASCII
letters, digits, ``.``, ``-`` and ``_``, starting with a letter or digit, at most 255. So a
bus participant cannot register a variant that looks like, or on some database *is*,
another host's name (``'compute-1 '``, ``'compute-1\\u200b'``, a Cyrillic ``'с'``) or that
splits into two (``'compute-1,compute-2'``), and a new name that differs from a registered
or enrolled one only in letter case is refused as the same host.
"""
import re

import sqlalchemy as sa

from tclouds_openstack.attestation.service import models
from tclouds_openstack.common import exception

_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,254}\Z')


def check(name):
    """``name`` if it is an admissible compute host name, else BadRequest (field host)."""
    if isinstance(name, str) and _NAME.match(name):
        return name
    raise exception.BadRequest(
        '%r is not a compute host name: 1..255 ASCII letters, digits, ".", "-" or "_", '
        'starting with a letter or digit (no spaces, invisible or non-ASCII characters, '
        '"," or ":")' % (name,) if isinstance(name, str) else
        'must be a compute host name (a string)', field='host')


def other_spelling(session, name):
    """The registered or enrolled host whose name is ``name`` in other letter case, or None."""
    lowered = name.lower()
    for column in (models.Host.name, models.Enrolment.host):
        row = (session.query(column)
               .filter(sa.func.lower(column) == lowered, column != name).first())
        if row is not None:
            return row[0]
    return None


def refuse_other_spelling(session, name):
    """Conflict when ``name`` is another host's name in other letter case."""
    other = other_spelling(session, name)
    if other is not None:
        raise exception.Conflict(
            'host name %s differs from the host %s only in letter case: one host has one '
            'spelling (Nova on MySQL compares host names ignoring case); use %s, or an '
            'admin deletes %s first' % (name, other, other, other))
