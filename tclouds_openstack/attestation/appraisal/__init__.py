"""Appraisal (pure): evidence + policy -> verdict listing every failed check.

Policies are Keylime's JSON formats (:mod:`.policy`); :func:`.core.appraise` is the entry
point; :mod:`.measured_boot` holds the reference-state checks.
"""
from tclouds_openstack.attestation.appraisal.core import Appraisal  # noqa: F401
from tclouds_openstack.attestation.appraisal.core import appraise  # noqa: F401
from tclouds_openstack.attestation.appraisal.core import Evidence  # noqa: F401
from tclouds_openstack.attestation.appraisal.core import Failure  # noqa: F401
from tclouds_openstack.attestation.appraisal.core import HostState  # noqa: F401
from tclouds_openstack.attestation.appraisal.policy import parse_policy  # noqa: F401
from tclouds_openstack.attestation.appraisal.policy import Policy  # noqa: F401
from tclouds_openstack.attestation.appraisal.policy import PolicyError  # noqa: F401
