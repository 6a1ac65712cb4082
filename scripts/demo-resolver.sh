#!/bin/bash
# The resolver's story on one machine: a sandbox asks dnsd at 127.0.0.11 for its peers' names,
# gets NODATA/NXDOMAIN right, reaches outside names through an upstream, and sees a peer appear
# and vanish. Removes everything it made, also on failure.
# (The multi-host story of DESIGN.md §1 is `make demo`, scripts/demo.sh.)
set -euo pipefail
DNSD=${1:-.build/release/dnsd}
NS=c01-demo-$$
WORK=$(mktemp -d /tmp/dnsd-demo-XXXXXX)
. "$(dirname "$0")/cleanup.sh"
CLEANUP_NETNS+=("$NS")

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "an upstream resolver for the outside world (dnsmasq on the host's loopback)"
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --listen-address=127.0.0.1 \
    --bind-interfaces --port=5353 --user=root --pid-file= --address=/example.test/203.0.113.10 --log-facility=/dev/null &
PIDS+=($!)

say "a sandbox (network namespace) and the records of network vnet"
run ip netns add "$NS"
cat > "$WORK/vnet.hosts" <<'HOSTS'
192.168.0.2 c01
192.168.0.3 c02 web
192.168.0.4 c03 web
fd00::3     c02
HOSTS
run cat "$WORK/vnet.hosts"

say "dnsd answers at 127.0.0.11 inside the sandbox"
"$DNSD" serve-dns --netns "$NS" --network vnet --records "$WORK/vnet.hosts" --upstream 127.0.0.1:5353 &
PIDS+=($!)
for _ in $(seq 50); do ip netns exec "$NS" dig +short +time=1 @127.0.0.11 c01 >/dev/null 2>&1 && break; sleep 0.1; done

dig() { ip netns exec "$NS" dig @127.0.0.11 +time=2 +tries=1 "$@"; }
say "name and name.network"
run dig +short c02.vnet
run dig +short c02
say "an alias shared by two containers: both addresses, rotated"
run dig +short web
run dig +short web
say "AAAA where there is IPv6; NODATA (not NXDOMAIN) where there is not"
run dig +short AAAA c02.vnet
dig AAAA c01.vnet | grep -E 'status|flags'
say "reverse lookup"
run dig +short -x 192.168.0.3
say "unknown name inside vnet: NXDOMAIN, authoritative, never forwarded"
dig nosuch.vnet | grep status
say "everything else goes upstream"
run dig +short example.test
say "a new peer appears (records reloaded on SIGHUP), then vanishes"
echo "192.168.0.9 c09" >> "$WORK/vnet.hosts"
kill -HUP "${PIDS[1]}"; sleep 0.2
run dig +short c09.vnet
sed -i '/c09/d' "$WORK/vnet.hosts"
kill -HUP "${PIDS[1]}"; sleep 0.2
dig c09.vnet | grep status
say "done: everything removed"
