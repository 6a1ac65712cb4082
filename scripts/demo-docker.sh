#!/bin/bash
# The Docker story (issue 14) on one machine: etcd and two simulated hosts, one dnsd daemon and
# one dockerd 20.10 each (dnsd serves Docker's plugin socket; each dockerd sees its own host's).
# Shows each command and its output, then removes everything it made (also on failure).
set -euo pipefail
DNSD=$(cd "$(dirname "${1:-.build/release/dnsd}")" && pwd)/$(basename "${1:-.build/release/dnsd}")
cd "$(dirname "$0")"
. ./underlay.sh
. ./runtimes.sh
P=demod$$
WORK=$(mktemp -d /tmp/dnsd-demo-docker-XXXXXX)
DOCKER1=/tmp/dnsd-dd1-$$ DOCKER2=/tmp/dnsd-dd2-$$   # short: dockerd keeps sockets there
. ./cleanup.sh
CLEANUP_NETNS+=("${P}.*" "h[12]-ov-.*")
SHARED=$WORK/shared-missing
rt_shared_begin "$SHARED"
remove_all() {
    set +e
    rt_dockerd_clean "$DOCKER1"; rt_dockerd_clean "$DOCKER2"
    rt_shared_end "$SHARED"
    cleanup
}
trap remove_all EXIT INT TERM

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
docker_on() { local h=$1; shift; printf '\033[36m%s$\033[0m docker %s\n' "$h" "$*"; if [ "$h" = h1 ]; then rt_docker "$DOCKER1" "$@"; else rt_docker "$DOCKER2" "$@"; fi; }

say "an underlay (198.18.0.0/24) with etcd at .254 and hosts h1, h2 at .1-.2; dnsd and dockerd on each"
underlay_create
underlay_addhost "${P}etcd" 198.18.0.254
underlay_etcd "${P}etcd" --election-timeout 200 --heartbeat-interval 20
mkdir -p "$WORK/image"; rt_image "$WORK/image"
for n in 1 2; do
    underlay_addhost "${P}h$n" "198.18.0.$n"
    D=$DOCKER1; [ $n = 2 ] && D=$DOCKER2
    echo "h$n\$ dnsd daemon --store etcd://198.18.0.254:2379 --advertise 198.18.0.$n --host-id h$n --docker-plugin /run/docker/plugins/dnsd.sock &"
    nsenter --net=/run/netns/${P}h$n "$DNSD" daemon --store etcd://198.18.0.254:2379 --advertise "198.18.0.$n" \
        --host-id "h$n" --state-dir "$WORK/state-h$n" --sock "$WORK/h$n.sock" --lease-ttl 3 --upstream 127.0.0.1:9 \
        --docker-plugin "$D/plugins/dnsd.sock" --docker-api "$D/docker.sock" --log-level warning &
    PIDS+=($!)
    dnsd_wait "$DNSD" "$WORK/h$n.sock"
    echo "h$n\$ dockerd ...   # its /run/docker/plugins is this host's"
    rt_dockerd_start "$D" "${P}h$n"
    rt_docker "$D" load -q -i "$WORK/image/image.tar" >/dev/null
done

say "h1 creates the network through Docker: a dnsd overlay network, which h2's dockerd gets too"
docker_on h1 network create -d dnsd --ipam-driver dnsd --subnet 192.168.0.0/24 vnet
for _ in $(seq 50); do rt_docker "$DOCKER2" network ls | grep -q vnet && break; sleep 0.1; done
docker_on h2 network ls

say "web on h1; from h2, by name (Docker's resolver forwards to dnsd at the network's gateway)"
docker_on h1 run -d --name web --network vnet "$RT_IMAGE" httpd -f -p 80 -h /www >/dev/null
echo "h2\$ dnsd docker dns-args vnet"
DNS=$("$DNSD" docker dns-args --sock "$WORK/h2.sock" vnet); echo "$DNS"
docker_on h2 run --rm $DNS --network vnet "$RT_IMAGE" nslookup web
docker_on h2 run --rm $DNS --network vnet "$RT_IMAGE" wget -qO- http://web.vnet/

say "h1 stops web: gone from DNS on h2"
docker_on h1 stop -t 0 web >/dev/null
docker_on h2 run --rm $DNS --network vnet "$RT_IMAGE" nslookup web.vnet || true
say "done: removing the containers, dockerds, hosts, etcd and every namespace"
