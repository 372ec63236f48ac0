"""Fixtures for the attestation functional tests: real swtpm hosts, real RabbitMQ, real DBs.

The simulated fleet itself (private configuration with unique topics, swtpm hosts with
agents, registrar and workers) is :mod:`tclouds_openstack.attestation.simfleet`; this adds
the database fixtures (sqlite and a throw-away MariaDB database).
"""
import json
import uuid

import pymysql
import pytest

from tclouds_openstack.attestation.service import verifier as verifier_mod
from tclouds_openstack.attestation import simfleet
from tests.functional.tpm.conftest import local_ca  # noqa: F401

RABBIT = simfleet.RABBIT
Fleet = simfleet.Fleet
make_conf = simfleet.make_conf
golden_policy_documents = simfleet.golden_policy_documents
simulated = simfleet.simulated
store_mod = simfleet.store_mod


def golden_fleet(tmp_path, local_ca, rpc_timeout):  # noqa: F811
    """A fixture's body: a fleet on sqlite whose default policy is the golden one."""
    conf = make_conf('sqlite:///%s' % (tmp_path / 'a.sqlite'), rpc_timeout=rpc_timeout)
    fleet = Fleet(conf, str(tmp_path), local_ca)
    fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                            golden_policy_documents().items()})
    try:
        yield fleet
    finally:
        fleet.close()


def registered_host(fleet, name, serve=True):
    """A registered host (the registrar starts once the local CA issued a certificate)."""
    host = fleet.add_host(name, register=False, serve=False)
    if not fleet.servers:
        fleet.start_registrar(fleet.ca.ca_bundle_pem())
    host.agent.register()
    if serve:
        host.agent.start()
    return host


def manual_verifier(fleet, **overrides):
    """A worker without its loop (``[attestation]`` overrides set first): tests drive rounds."""
    for name, value in overrides.items():
        fleet.conf.set_override(name, value, group='attestation')
    worker = verifier_mod.Verifier(fleet.conf, fleet.store, fleet.transport, worker='w')
    fleet.verifiers.append(worker)
    return worker


def mariadb_url():
    name = 'tclouds_att_%s' % uuid.uuid4().hex[:8]
    conn = pymysql.connect(host='127.0.0.1', user='root', password='')
    with conn.cursor() as cur:
        cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
    conn.close()
    return name, 'mysql+pymysql://root:@127.0.0.1/%s?charset=utf8mb4' % name


def drop_mariadb(name):
    conn = pymysql.connect(host='127.0.0.1', user='root', password='')
    with conn.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS %s' % name)
    conn.close()


@pytest.fixture(params=['sqlite', 'mariadb'])
def db_url(request, tmp_path):
    if request.param == 'sqlite':
        yield 'sqlite:///%s' % (tmp_path / 'attestation.sqlite')
        return
    name, url = mariadb_url()
    try:
        yield url
    finally:
        drop_mariadb(name)
