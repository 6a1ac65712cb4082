#!/bin/bash
# The CNI story (issue 13) on one machine: etcd and two simulated hosts, one dnsd daemon each;
# podman on both hosts and containerd (`ctr run --cni`) on h2, all on the dnsd overlay network
# vnet. Shows each command and its output, then removes everything it made (also on failure).
set -euo pipefail
DNSD=$(cd "$(dirname "${1:-.build/release/dnsd}")" && pwd)/$(basename "${1:-.build/release/dnsd}")
cd "$(dirname "$0")"
. ./underlay.sh
. ./runtimes.sh
P=demop$$
WORK=$(mktemp -d /tmp/dnsd-demo-podman-XXXXXX)
. ./cleanup.sh
CLEANUP_NETNS+=("${P}.*" "h[12]-ov-.*")
CTR_CNI_MADE=()
SHARED=$(mktemp /tmp/dnsd-demo-podman-shared-XXXXXX)
rt_shared_begin "$SHARED"

remove_runtimes() {
    set +e
    rt_podman_clean "$WORK/podman-h1"; rt_podman_clean "$WORK/podman-h2"; rt_containerd_clean "$WORK/containerd-h2"
    for made in "${CTR_CNI_MADE[@]}"; do rm -rf "$made"; done
    rt_shared_end "$SHARED" vnet
    cleanup
}
trap remove_runtimes EXIT INT TERM

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
on() { local h=$1; shift; printf '\033[36m%s$\033[0m %s\n' "$h" "$*"; "$@"; }
podman_on() { local h=$1; shift; printf '\033[36m%s$\033[0m podman %s\n' "$h" "$*"; rt_podman "$WORK/podman-$h" "$@"; }
ctr_on() { local h=$1; shift; printf '\033[36m%s$\033[0m ctr %s\n' "$h" "$*"; rt_ctr "$WORK/containerd-$h" "$@"; }

for f in /etc/cni/net.d/10-dnsd-vnet.conflist /opt/cni/bin/dnsd; do
    [ -e "$f" ] && { echo "$f exists already (ctr --cni reads only /etc/cni/net.d and /opt/cni/bin): remove it first"; exit 1; }
done

say "an underlay (198.18.0.0/24) with etcd at .254 and hosts h1, h2 at .1-.2"
underlay_create
underlay_addhost "${P}etcd" 198.18.0.254
underlay_etcd "${P}etcd" --election-timeout 200 --heartbeat-interval 20
for n in 1 2; do
    underlay_addhost "${P}h$n" "198.18.0.$n"
    echo "h$n\$ dnsd daemon --store etcd://198.18.0.254:2379 --advertise 198.18.0.$n --host-id h$n &"
    nsenter --net=/run/netns/${P}h$n "$DNSD" daemon --store etcd://198.18.0.254:2379 --advertise "198.18.0.$n" \
        --host-id "h$n" --state-dir "$WORK/state-h$n" --sock "$WORK/h$n.sock" --lease-ttl 3 --upstream 127.0.0.1:9 \
        --log-level warning &
    PIDS+=($!)
done
for n in 1 2; do dnsd_wait "$DNSD" "$WORK/h$n.sock"; done

say "an image built here from busybox-static (no registry)"
mkdir -p "$WORK/image"; rt_image "$WORK/image"; ls -l "$WORK/image/image.tar"

say "the overlay network, and each host's podman set up for it (CNI backend, runc)"
on h1 "$DNSD" network create --sock "$WORK/h1.sock" --driver=overlay --subnet=192.168.0.0/24 vnet
for n in 1 2; do
    echo "h$n\$ dnsd cni install vnet   # into this host's podman config dirs"
    rt_podman_setup "$WORK/podman-h$n" "${P}h$n" "$WORK/h$n.sock" vnet "$DNSD"
    cat "$WORK/podman-h$n/net.d/10-dnsd-vnet.conflist"
    rt_podman "$WORK/podman-h$n" load -q -i "$WORK/image/image.tar" >/dev/null
done

say "h1: web serves http; h2 resolves it by name (answered by dnsd) and fetches the page over VXLAN"
podman_on h1 run -d --name web --network vnet "$RT_IMAGE" httpd -f -p 80 -h /www >/dev/null
podman_on h2 run --rm --network vnet "$RT_IMAGE" cat /etc/resolv.conf
podman_on h2 run --rm --network vnet "$RT_IMAGE" nslookup web.vnet
podman_on h2 run --rm --network vnet "$RT_IMAGE" wget -qO- http://web/

say "containerd on h2: ctr run --cni reads /etc/cni/net.d and /opt/cni/bin only"
[ -e /opt/cni/bin/loopback ] || CTR_CNI_MADE+=(/opt/cni/bin/loopback)   # dnsd cni install links it when missing
on h2 "$DNSD" cni install --sock "$WORK/h2.sock" vnet
CTR_CNI_MADE+=(/etc/cni/net.d/10-dnsd-vnet.conflist /opt/cni/bin/dnsd)
rt_containerd_start "$WORK/containerd-h2" "${P}h2"
rt_ctr "$WORK/containerd-h2" images import "$WORK/image/image.tar" >/dev/null
ctr_on h2 run -d --cni "$RT_IMAGE" c3 sleep 600
ctr_on h2 tasks exec --exec-id q1 c3 nslookup web.vnet 127.0.0.11   # ctr writes no resolv.conf
on h2 "$DNSD" ps --sock "$WORK/h2.sock"

say "h1 stops web: it vanishes from DNS on h2"
podman_on h1 stop -t 0 web >/dev/null
ctr_on h2 tasks exec --exec-id q2 c3 nslookup web.vnet 127.0.0.11 || true
say "ctr never calls DEL for a detached task: dnsd notices the container is gone"
ctr_on h2 tasks kill -s KILL c3
sleep 3
on h2 "$DNSD" ps --sock "$WORK/h2.sock"
on h2 "$DNSD" cni uninstall vnet
CTR_CNI_MADE=("${CTR_CNI_MADE[@]/\/etc\/cni\/net.d\/10-dnsd-vnet.conflist/}")
say "done: removing the containers, runtimes, hosts, etcd and every namespace"
