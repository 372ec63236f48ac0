#!/bin/bash
# Start the services the functional tests talk to, when they are not already running:
# RabbitMQ (5672), MariaDB (3306), PostgreSQL (5432), Redis (6379). Then make sure the
# test databases and users exist. Idempotent; never stops anything.
set -uo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT NAME PATTERN: wait until the service listens, as long as its process is
# alive (a loaded machine may take minutes; a dead process ends the wait at once).
wait_port() {
    local port=$1 name=$2 pattern=$3
    for _ in $(seq 1 1200); do
        listening "$port" && return 0
        if ! running "$pattern"; then
            sleep 2     # a daemon that forks: give the child its moment, then look again
            running "$pattern" || { echo "services: $name exited before listening on 127.0.0.1:$port" >&2; return 1; }
        fi
        sleep 0.5
    done
    echo "services: $name did not start listening on 127.0.0.1:$port" >&2
    return 1
}

# running PATTERN: a process of the service exists (started, perhaps still starting: on a
# busy machine a TCP probe can fail while it is there, and a second instance sharing its
# data directory would damage it, as a root-started RabbitMQ did to the rabbitmq user's).
# only this network namespace: a DevStack root beside it runs its own RabbitMQ and MariaDB
running() { pgrep --ns $$ --nslist net -f -- "$1" >/dev/null 2>&1; }

# ensure PORT NAME PATTERN START-COMMAND...: start the service only when nothing of it runs.
ensure() {
    local port=$1 name=$2 pattern=$3
    shift 3
    listening "$port" && return 0
    if ! running "$pattern"; then
        echo "services: starting $name"
        "$@"
    fi
    wait_port "$port" "$name" "$pattern"
}

rabbitmq_start() {
    # as the rabbitmq user when the package created one: its files stay its own
    if id rabbitmq >/dev/null 2>&1; then
        su rabbitmq -s /bin/sh -c 'cd ~ && rabbitmq-server -detached' >/dev/null 2>&1
    else
        rabbitmq-server -detached >/dev/null 2>&1
    fi
}

mariadb_start() {
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
}

postgresql_start() {
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
}

redis_start() {
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

ensure 5672 RabbitMQ 'beam.smp.* rabbit' rabbitmq_start
ensure 3306 MariaDB '^/usr/sbin/(mariadbd|mysqld)' mariadb_start
ensure 5432 PostgreSQL 'postgres.* -D ' postgresql_start
ensure 6379 Redis '^redis-server .*:6379' redis_start

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
