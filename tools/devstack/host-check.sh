#!/bin/bash
# What the DevStack job must not change on this machine, printed so that a "before" and an
# "after" can be compared with diff: the shared services still answer with their usual
# credentials, nothing new listens on DevStack's ports, no package changed, and no
# OpenStack directory appeared in /etc or /opt.
set -uo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && echo listening || echo closed; }

echo "python3: $(python3 --version 2>&1) $(readlink -f "$(command -v python3)")"
echo "system python3: $(/usr/bin/python3 --version 2>&1)"
echo "packages: $(dpkg-query -W -f '${Package} ${Version}\n' | sha256sum | cut -c1-16)"
for port in 80 443 3306 5432 5672 6379 11211 5000 8774 8776 8080 9292 9696; do
    echo "port $port: $(listening "$port")"
done
if command -v mysql >/dev/null; then
    mysql -uroot -h127.0.0.1 -e 'select 1' >/dev/null 2>&1 \
        && echo "mariadb: root with empty password works" \
        || echo "mariadb: root with empty password REFUSED"
fi
if command -v rabbitmqctl >/dev/null; then
    timeout 60 rabbitmqctl -q authenticate_user guest guest >/dev/null 2>&1 \
        && echo "rabbitmq: guest/guest works" || echo "rabbitmq: guest/guest REFUSED"
fi
command -v psql >/dev/null && { psql -h 127.0.0.1 -U postgres -tAc 'select 1' >/dev/null 2>&1 \
    && echo "postgresql: trust login works" || echo "postgresql: trust login REFUSED"; }
for d in /etc/nova /etc/cinder /etc/swift /etc/keystone /etc/glance /etc/neutron \
        /etc/placement /etc/tclouds /opt/stack /etc/apache2/sites-enabled/keystone-wsgi-public.conf; do
    [[ -e $d ]] && echo "present: $d"
done
echo "my.cnf: $(cat /etc/mysql/my.cnf /etc/mysql/mariadb.conf.d/*.cnf 2>/dev/null | sha256sum | cut -c1-16)"
echo "fstab: $(sha256sum </etc/fstab | cut -c1-16)"
echo "ip_forward: $(cat /proc/sys/net/ipv4/ip_forward)"
echo "network namespaces: $(ip netns list 2>/dev/null | grep -c tclouds-devstack)"
echo "mounts of the root: $(grep -c tclouds-devstack /proc/mounts)"
