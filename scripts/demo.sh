#!/bin/bash
# The story of DESIGN.md §1 on one machine: etcd and three simulated hosts (network namespaces
# on an underlay bridge, 198.18.0.0/24), one dnsd daemon per host started with `nsenter --net`.
# Shows each command and its output, then removes everything it made (also on failure).
set -euo pipefail
DNSD=$(cd "$(dirname "${1:-.build/release/dnsd}")" && pwd)/$(basename "${1:-.build/release/dnsd}")
. "$(dirname "$0")/underlay.sh"
P=demo$$
WORK=$(mktemp -d /tmp/dnsd-demo-XXXXXX)
. "$(dirname "$0")/cleanup.sh"
CLEANUP_NETNS+=("${P}.*" c01 c02 c03 "h[123]-ov-.*")

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
on() { local h=$1; shift; printf '\033[36m%s$\033[0m %s\n' "$h" "$*"; DNSD_SOCK="$WORK/$h.sock" "$@"; }

for n in c01 c02 c03; do
    ip netns list | grep -qx "$n" && { echo "a namespace '$n' exists already: remove it first"; exit 1; }
done

say "an underlay (198.18.0.0/24) with etcd at .254 and hosts h1, h2, h3 at .1-.3"
underlay_create
underlay_addhost "${P}etcd" 198.18.0.254
underlay_etcd "${P}etcd" --election-timeout 200 --heartbeat-interval 20
# The hosts' upstream resolver for outside names (dnsmasq beside etcd).
nsenter --net=/run/netns/${P}etcd dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --user=root \
    --pid-file= --listen-address=198.18.0.254 --bind-interfaces --address=/example.test/203.0.113.10 --log-facility=/dev/null &
PIDS+=($!)
for n in 1 2 3; do
    underlay_addhost "${P}h$n" "198.18.0.$n"
    echo "h$n\$ dnsd daemon --store etcd://198.18.0.254:2379 --advertise 198.18.0.$n --host-id h$n &"
    nsenter --net=/run/netns/${P}h$n "$DNSD" daemon --store etcd://198.18.0.254:2379 --advertise "198.18.0.$n" \
        --host-id "h$n" --state-dir "$WORK/state-h$n" --sock "$WORK/h$n.sock" --lease-ttl 3 --upstream 198.18.0.254 \
        --log-level warning &
    PIDS+=($!)
done
for n in 1 2 3; do dnsd_wait "$DNSD" "$WORK/h$n.sock"; done

say "an overlay network, created on any host, visible on all"
on h1 "$DNSD" network create --driver=overlay --subnet=192.168.0.0/24 vnet
on h3 "$DNSD" network ls
say "h1: c01 on the local bridge, then connected to vnet (eth1)"
on h1 "$DNSD" run --name=c01 --hostname=c01
on h1 "$DNSD" network connect vnet c01
say "h2: c02 straight on vnet (eth0), with the gateway bridge as eth1"
on h2 "$DNSD" run --name=c02 --hostname=c02 --net=vnet --alias web
say "c01's hosts file (on h1) lists c02 (on h2)"
sleep 0.2
on h1 ip netns exec c01 cat /etc/hosts
say "c01 resolves c02 by DNS, answered by dnsd at 127.0.0.11"
on h1 ip netns exec c01 dig +short c02.vnet
on h1 ip netns exec c01 dig +short web
say "outside names go to the upstream"
on h1 ip netns exec c01 dig +short example.test
say "and reaches it across hosts over VXLAN"
on h1 ip netns exec c01 busybox ping -c1 -W2 c02
say "a dual-stack network: an IPv4 and an IPv6 subnet, an address of each per container"
on h1 "$DNSD" network create --driver=overlay --subnet=192.168.1.0/24 --subnet=fd00:db8:1::/64 vnet6
on h3 "$DNSD" run --name=c03 --hostname=c03 --net=vnet6
on h1 "$DNSD" network connect vnet6 c01
sleep 0.2
on h1 ip netns exec c01 dig +short AAAA c03.vnet6
on h1 ip netns exec c01 dig +short -x fd00:db8:1::2
on h1 ip netns exec c01 busybox ping -6 -c1 -W2 c03.vnet6
on h3 "$DNSD" stop c03
say "a name is unique in the cluster"
on h3 "$DNSD" run --name=c02 --net=vnet || true
say "h2 stops c02: it vanishes from c01's DNS and hosts file on h1"
on h2 "$DNSD" stop c02
sleep 0.3
on h1 ip netns exec c01 dig c02.vnet | grep status
on h1 ip netns exec c01 grep -c c02 /etc/hosts || true
on h1 "$DNSD" stop c01
say "done: removing the hosts, etcd and every namespace"
