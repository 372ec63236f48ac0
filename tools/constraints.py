#!/usr/bin/env python3
"""Print the pip constraints of one of the project's two tested sets.

``tested``: ``constraints.txt`` as it is (the exact versions the project develops with).

``openstack``: OpenStack's upper-constraints (the versions DevStack installs a cloud with),
plus, for every package upper-constraints does not pin (nova, cinder, keystone, placement,
swift, keylime, the linters, ...), the version of ``constraints.txt`` (or, where that
version contradicts upper-constraints, the one of ``OPENSTACK_OVERRIDES``). Upper-constraints
wins wherever it names a package, even when only for other Python versions: the two files
are never merged line by line, so the result always resolves like upper-constraints does.

Where upper-constraints comes from: ``TCLOUDS_UPPER_CONSTRAINTS`` (a path or URL); else
``../shared/vendor/openstack-requirements/upper-constraints.txt`` beside the checkout when it
exists (offline machines); else OpenStack's published file for master.

Standard library only: tools/bootstrap.sh runs it before any virtualenv exists.

    tools/constraints.py tested|openstack [--source]
"""
import os
import pathlib
import re
import sys
import urllib.request

TOP = pathlib.Path(__file__).resolve().parent.parent
TESTED = TOP / 'constraints.txt'
VENDORED = TOP.parent / 'shared' / 'vendor' / 'openstack-requirements' / 'upper-constraints.txt'
PUBLISHED = 'https://releases.openstack.org/constraints/upper/master'
_NAME = re.compile(r'^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(===|==)')
# Packages upper-constraints does not pin whose tested version contradicts it (the newest
# release that works with upper-constraints' versions) or which only this set needs, each
# with its reason.
OPENSTACK_OVERRIDES = {
    # 3.0.0 requires cryptography>=47.0.0; upper-constraints pins cryptography 43.0.3
    'tpm2-pytss': '2.3.0',
    # 34.0.0 requires keystoneauth1>=5.16.0 and oslo.versionedobjects>=3.12.0; upper-constraints
    # pins 5.15.0 and 3.11.0. 33.0.2 is the newest release whose requirements it satisfies.
    'nova': '33.0.2',
    # a requirement of tpm2-pytss 2.x that constraints.txt has no version for
    'asn1crypto': '1.5.1',
}


def upper_constraints_source():
    source = os.environ.get('TCLOUDS_UPPER_CONSTRAINTS')
    if source:
        return source
    return str(VENDORED) if VENDORED.is_file() else PUBLISHED


def _read(source):
    try:
        if re.match(r'^[a-z]+://', source):
            with urllib.request.urlopen(source, timeout=60) as resp:
                return resp.read().decode('utf-8')
        return pathlib.Path(source).read_text()
    except (OSError, ValueError) as exc:
        sys.exit('tools/constraints.py: cannot read OpenStack\'s upper-constraints from %s (%s); '
                 'name a copy with TCLOUDS_UPPER_CONSTRAINTS=<path or URL>' % (source, exc))


def _normalize(name):
    # PEP 503: pip treats these spellings as one project
    return re.sub(r'[-_.]+', '-', name).lower()


def names(text):
    found = set()
    for line in text.splitlines():
        match = _NAME.match(line)
        if match:
            found.add(_normalize(match.group(1)))
    return found


def openstack(upper_text, tested_text):
    pinned = names(upper_text)
    extra = []
    for line in tested_text.splitlines():
        match = _NAME.match(line)
        name = match and _normalize(match.group(1))
        if name and name not in pinned:
            override = OPENSTACK_OVERRIDES.get(name)
            extra.append('%s==%s' % (match.group(1), override) if override else line)
    tested = names(tested_text)
    extra += ['%s==%s' % (name, version) for name, version in sorted(OPENSTACK_OVERRIDES.items())
              if name not in tested and name not in pinned]
    return (upper_text.rstrip('\n') + '\n'
            + '# Not pinned by OpenStack upper-constraints: the project\'s tested versions'
            + ' (constraints.txt)\n'
            + '\n'.join(extra) + '\n')


def main(argv):
    if argv[:1] == ['tested']:
        sys.stdout.write(TESTED.read_text())
        return 0
    if argv[:1] == ['openstack']:
        source = upper_constraints_source()
        if argv[1:] == ['--source']:
            print(source)
            return 0
        sys.stdout.write('# tools/constraints.py openstack: %s + constraints.txt\n' % source)
        sys.stdout.write(openstack(_read(source), TESTED.read_text()))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
