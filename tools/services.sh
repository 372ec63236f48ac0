#!/bin/bash
# Start the services the functional tests talk to, when they are not already running:
# RabbitMQ (5672), MariaDB (3306), PostgreSQL (5432), Redis (6379). Then make sure the
# test databases and users exist. Idempotent; never stops anything.
set -uo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 name=$2
    for _ in $(seq 1 120); do
        listening "$port" && return 0
        sleep 0.5
    done
    echo "services: $name did not start listening on 127.0.0.1:$port" >&2
    return 1
}

if ! listening 5672; then
    echo "services: starting RabbitMQ"
    rabbitmq-server -detached >/dev/null 2>&1
    wait_port 5672 RabbitMQ
fi
if ! listening 3306; then
    echo "services: starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_port 3306 MariaDB
fi
if ! listening 5432; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    wait_port 5432 PostgreSQL
fi
if ! listening 6379; then
    echo "services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_port 6379 Redis
fi

# A dedicated account for the tests, reachable over TCP with a password on both databases
# (a fresh Debian MariaDB authenticates root by unix socket only).
mariadb -u root -e "CREATE USER IF NOT EXISTS 'tclouds'@'localhost' IDENTIFIED BY 'tclouds';
CREATE USER IF NOT EXISTS 'tclouds'@'127.0.0.1' IDENTIFIED BY 'tclouds';
GRANT ALL PRIVILEGES ON *.* TO 'tclouds'@'localhost'; GRANT ALL PRIVILEGES ON *.* TO 'tclouds'@'127.0.0.1';" \
    >/dev/null 2>&1 || echo "services: could not provision the MariaDB test user" >&2
if ! su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='tclouds'\"" 2>/dev/null | grep -q 1; then
    su postgres -c "psql -c \"CREATE ROLE tclouds LOGIN SUPERUSER PASSWORD 'tclouds'\"" >/dev/null 2>&1 \
        || echo "services: could not provision the PostgreSQL test user" >&2
fi
exit 0
