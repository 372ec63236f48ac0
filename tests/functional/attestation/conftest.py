"""Fixtures for the attestation functional tests: real swtpm hosts, real RabbitMQ, real DBs.

The simulated fleet itself (private configuration with unique topics, swtpm hosts with
agents, registrar and workers) is :mod:`tclouds_openstack.attestation.simfleet`; this adds
the database fixtures (sqlite and a throw-away MariaDB database).
"""
import uuid

import pymysql
import pytest

from tclouds_openstack.attestation import simfleet
from tests.functional.tpm.conftest import local_ca  # noqa: F401

RABBIT = simfleet.RABBIT
Fleet = simfleet.Fleet
make_conf = simfleet.make_conf
golden_policy_documents = simfleet.golden_policy_documents
simulated = simfleet.simulated
store_mod = simfleet.store_mod


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
