# Simulated hosts for the demo and the benchmarks (sourced): network namespaces on an underlay
# bridge in 198.18.0.0/24, and etcd on one of them. The caller sets P (a name prefix) and WORK,
# keeps PIDS, and removes the namespaces "${P}*" when done (scripts/cleanup.sh does both).

underlay_create() {  # the underlay namespace "${P}ul" with bridge ul0
    ip netns add "${P}ul"; ip -n "${P}ul" link add ul0 type bridge; ip -n "${P}ul" link set ul0 up
}

underlay_addhost() {  # NAME ADDRESS: a host namespace whose eth0 (ADDRESS/24) is a port of ul0
    ip netns add "$1"; ip -n "$1" link set lo up
    ip -n "${P}ul" link add "u${2##*.}" type veth peer name eth0 netns "$1"
    ip -n "${P}ul" link set "u${2##*.}" master ul0 up
    ip -n "$1" addr add "$2/24" dev eth0; ip -n "$1" link set eth0 up
}

underlay_etcd() {  # NAME [ETCD OPTIONS...]: etcd at 198.18.0.254:2379 in host NAME, data in $WORK/etcd; waits until healthy
    local host=$1; shift
    nsenter --net=/run/netns/"$host" etcd --name underlay --data-dir "$WORK/etcd" --logger zap --log-level error \
        --listen-client-urls http://198.18.0.254:2379 --advertise-client-urls http://198.18.0.254:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster underlay=http://127.0.0.1:2380 "$@" &
    PIDS+=($!)
    for _ in $(seq 100); do nsenter --net=/run/netns/"$host" curl -s -m 1 http://198.18.0.254:2379/health | grep -q true && return 0; sleep 0.1; done
    echo "etcd did not become healthy" >&2
    return 1
}

dnsd_wait() {  # DNSD SOCK: waits until the daemon on SOCK answers (10 s), else says so and fails
    for _ in $(seq 100); do "$1" ps --sock "$2" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "the dnsd daemon on $2 did not start" >&2
    return 1
}

underlay_dnsd_host() {  # N DNSD: host "${P}hN" at 198.18.0.N with a dnsd daemon on the underlay's etcd (state, socket and log in $WORK); its pid in DNSD_PID
    local n=$1 dnsd=$2
    underlay_addhost "${P}h$n" "198.18.0.$n"
    nsenter --net=/run/netns/"${P}h$n" "$dnsd" daemon --store etcd://198.18.0.254:2379 --advertise "198.18.0.$n" \
        --host-id "${P}h$n" --state-dir "$WORK/state-h$n" --sock "$WORK/h$n.sock" --upstream 127.0.0.1:9 \
        --log-level error > "$WORK/daemon-h$n.log" 2>&1 &
    DNSD_PID=$!
    PIDS+=($DNSD_PID)
}
