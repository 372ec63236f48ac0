"""Fixtures of the secure log functional tests: databases and a populated store."""
import uuid

import psycopg2
import pymysql
import pytest


def _mariadb():
    name = 'tclouds_slog_%s' % uuid.uuid4().hex[:8]
    conn = pymysql.connect(host='127.0.0.1', user='tclouds', password='tclouds')
    with conn.cursor() as cur:
        cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
    conn.close()

    def drop():
        conn = pymysql.connect(host='127.0.0.1', user='tclouds', password='tclouds')
        with conn.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS %s' % name)
        conn.close()
    return 'mysql+pymysql://tclouds:tclouds@127.0.0.1/%s?charset=utf8mb4' % name, drop


def _postgres():
    name = 'tclouds_slog_%s' % uuid.uuid4().hex[:8]

    def admin(sql):
        conn = psycopg2.connect(host='127.0.0.1', user='tclouds', password='tclouds',
                                dbname='postgres')
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()
    admin('CREATE DATABASE %s' % name)
    return ('postgresql+psycopg2://tclouds:tclouds@127.0.0.1/%s' % name,
            lambda: admin('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name))


@pytest.fixture(params=['sqlite', 'mariadb', 'postgresql'])
def db_url(request, tmp_path):
    if request.param == 'sqlite':
        yield 'sqlite:///%s' % (tmp_path / 'securelog.sqlite')
        return
    url, drop = _mariadb() if request.param == 'mariadb' else _postgres()
    try:
        yield url
    finally:
        drop()
