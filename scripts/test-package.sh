#!/bin/bash
# The package on a host without Swift (issue 23), on this machine: installs the .deb with dpkg
# (refusing to touch a dnsd package installed already), checks what it holds and links, checks
# the service unit and runs its ExecStart line by hand, refuses bad config files in one line,
# then, with /opt/swift hidden behind an empty directory (a mount namespace of its own), runs the
# README's story on two simulated hosts with etcd using only the installed files and config
# files; upgrades to a newer version of the package and restarts the daemons (sandboxes stay
# attached and answering); purges, leaving nothing. Everything it made goes, also on failure.
# usage: scripts/test-package.sh DEB
set -Eeuo pipefail
DEB=$(readlink -f "$1")
[ "$(id -u)" = 0 ] || { echo "test-package needs root"; exit 1; }
[ -f "$DEB" ] || { echo "test-package: no package at $1 (make deb)"; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/underlay.sh"
P=dnsdpk$$-
WORK=$(mktemp -d /tmp/dnsd-pkg-XXXXXX)
. "$ROOT/scripts/cleanup.sh"
CLEANUP_NETNS+=("${P}.*")
INSTALLED=0
finish() {
    local status=$?
    trap - ERR
    set +eE
    if [ $status != 0 ]; then
        for log in "$WORK"/daemon-h*.log; do [ -f "$log" ] && { echo "--- $log (last lines)"; tail -5 "$log"; }; done
    fi
    cleanup
    [ $INSTALLED = 1 ] && dpkg -P dnsd >/dev/null 2>&1
    [ $status = 0 ] && echo "test-package: PASS" || echo "test-package: FAIL (exit $status)"
}
trap finish EXIT
trap 'echo "test-package: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM
fail() { echo "test-package: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

# Nothing of a dnsd package may be here already (installed, half-installed, or its config and
# state left): the test installs and purges its own, and purging removes /var/lib/dnsd.
if dpkg-query -W -f='${Status}' dnsd 2>/dev/null | grep -qv 'not-installed$'; then
    fail "dpkg knows a dnsd package on this machine already ($(dpkg-query -W -f='${Status}' dnsd)); not touching it"
fi
for path in /etc/dnsd /var/lib/dnsd /run/dnsd; do
    [ ! -e "$path" ] || fail "$path exists on this machine already; not touching it"
done
VERSION=$(dpkg-deb -f "$DEB" Version)

step "the package holds the binaries, the unit, the config file, man pages and completions"
CONTENTS=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for f in ./usr/bin/dnsd ./usr/bin/dnsd-daemon ./usr/bin/dnsd-cni ./lib/systemd/system/dnsd.service ./etc/dnsd/dnsd.json \
         ./usr/share/man/man8/dnsd.8.gz ./usr/share/man/man8/dnsd-daemon.8.gz ./usr/share/bash-completion/completions/dnsd \
         ./usr/share/zsh/vendor-completions/_dnsd ./usr/share/fish/vendor_completions.d/dnsd.fish ./usr/share/doc/dnsd/copyright; do
    grep -qx "$f" <<< "$CONTENTS" || fail "the package lacks $f"
done
dpkg-deb -f "$DEB" Depends | grep -q libmnl0 || fail "Depends lacks libmnl0"

step "install (dpkg -i $(basename "$DEB"))"
INSTALLED=1
dpkg -i "$DEB" >/dev/null || fail "dpkg -i refused the package"
dpkg -L dnsd > "$WORK/files"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
for b in dnsd dnsd-daemon dnsd-cni; do
    LINKED=$(ldd "/usr/bin/$b")
    ! grep -q "not found" <<< "$LINKED" || fail "$b: a library is missing: $LINKED"
    ! grep -Eq "/opt/swift|libswift|libFoundation|libdispatch" <<< "$LINKED" || fail "$b links the Swift toolchain's libraries: $LINKED"
    # Each shared library comes from a package the package depends on.
    for lib in $(awk '/=>/ {print $3}' <<< "$LINKED"); do
        pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1) || pkg=""
        [ -n "$pkg" ] || pkg=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1) || pkg=""
        [ -n "$pkg" ] || fail "$b links $lib, which no package owns"
        grep -qw "$pkg" <<< "$DEPENDS" || fail "$b links $lib from package '$pkg', which Depends ($DEPENDS) does not name"
    done
done
grep -aq "libcurl.so.4" /usr/bin/dnsd-daemon || fail "dnsd-daemon no longer names libcurl.so.4: revisit Depends"
grep -qw libcurl4 <<< "$DEPENDS" || fail "dnsd-daemon loads libcurl.so.4: Depends must name libcurl4"

step "the service unit"
UNIT=/lib/systemd/system/dnsd.service
if command -v systemd-analyze >/dev/null && systemd-analyze --version >/dev/null 2>&1; then
    systemd-analyze verify --man=no "$UNIT" || fail "systemd-analyze verify $UNIT"
else
    echo "(no systemd-analyze here: the unit is parsed instead)"
fi
python3 - "$UNIT" <<'PY' || fail "the unit does not parse as expected"
import sys
sections, current = {}, None
for raw in open(sys.argv[1]):
    line = raw.strip()
    if not line or line.startswith("#"): continue
    if line.startswith("[") and line.endswith("]"):
        current = sections.setdefault(line[1:-1], {}); continue
    key, _, value = line.partition("=")
    assert current is not None and value, f"line outside a section or without a value: {line}"
    current[key] = value
service = sections["Service"]
assert service["ExecStart"] == "/usr/bin/dnsd daemon --config /etc/dnsd/dnsd.json", service["ExecStart"]
assert service["Restart"] == "on-failure" and service["KillMode"] == "process" and service["Type"] in ("simple", "notify"), service
assert sections["Install"]["WantedBy"] == "multi-user.target"
PY
EXEC_START=$(sed -n 's/^ExecStart=//p' "$UNIT")

# Everything from here runs with /opt/swift hidden: an empty directory mounted over it in a
# mount namespace of its own. Only the mount holding /opt/swift is made a slave there (the
# cover never reaches this machine's namespace); /run/netns stays shared, so the namespaces a
# daemon makes are seen outside, as on a host.
mkdir -p "$WORK/empty"
ip netns list >/dev/null
HIDE='mount --make-slave "$(findmnt -n -o TARGET --target /opt/swift)" && mount --bind "$0" /opt/swift && exec "$@"'
hidden() { unshare -m --propagation unchanged bash -c "$HIDE" "$WORK/empty" "$@"; }
[ -n "$(ls -A /opt/swift)" ] || fail "no Swift toolchain in /opt/swift to hide"
hidden true || fail "cannot hide /opt/swift in a mount namespace"
[ -z "$(hidden ls -A /opt/swift)" ] || fail "/opt/swift is not hidden"
hidden /usr/bin/dnsd version | grep -q "^dnsd $VERSION (commit [0-9a-f]" || fail "dnsd version: $(hidden /usr/bin/dnsd version)"
hidden /usr/bin/dnsd --version | grep -q "^dnsd $VERSION" || fail "dnsd --version"
hidden /usr/bin/dnsd --help | grep -q "answers their names at 127.0.0.11 inside each one" || fail "dnsd --help"

step "bad config files: one line, nothing started"
refused() {  # CONFIG-TEXT EXPECTED-SUBSTRING
    printf '%s' "$1" > "$WORK/bad.json"
    local out rc=0
    out=$(timeout 10 unshare -n -m --propagation unchanged bash -c "$HIDE" "$WORK/empty" \
          /usr/bin/dnsd daemon --config "$WORK/bad.json" --sock "$WORK/bad.sock" --state-dir "$WORK/bad" 2>&1) || rc=$?
    [ $rc != 0 ] || fail "config '$1' was accepted"
    [ "$(wc -l <<< "$out")" = 1 ] || fail "config '$1': more than one line: $out"
    grep -q -- "$2" <<< "$out" || fail "config '$1': expected '$2' in: $out"
    [ ! -e "$WORK/bad.sock" ] || fail "config '$1': a daemon started"
}
refused '{"stor": "local"}' "unknown key 'stor'"
refused '{"lease-ttl": "10"}' "'lease-ttl' must be a number"
refused '{"upstream": "127.0.0.1"}' "'upstream' must be a list of strings"
refused '{"lease-ttl": 1}' "invalid --lease-ttl 1"
refused '["store", "local"]' "expected one JSON object"
refused '{"store": "etcd://"}' "invalid --store"
# The keys are exactly the daemon's flags.
FLAGS=$(hidden /usr/bin/dnsd daemon --help | grep -o -- '--[a-z][a-z-]*' | sed 's/^--//' | grep -vxE 'help|config|version' | sort -u | tr '\n' ' ')
printf '{"x": 1}' > "$WORK/bad.json"
KNOWN=$( { hidden /usr/bin/dnsd daemon --config "$WORK/bad.json" 2>&1 || true; } | sed 's/.*(known: \(.*\))/\1/' | tr -d ',' | tr ' ' '\n' | sort -u | tr '\n' ' ')
[ "$FLAGS" = "$KNOWN" ] || fail "the config keys ($KNOWN) are not the daemon's flags ($FLAGS)"

step "the shipped config file starts a daemon (scratch namespace), as the unit would"
# As systemd's RuntimeDirectory= and StateDirectory= would make them; the purge must remove both.
mkdir -p /run/dnsd /var/lib/dnsd
ip netns add "${P}solo"
ip -n "${P}solo" link set lo up
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin nsenter --net=/run/netns/"${P}solo" unshare -m --propagation unchanged \
    bash -c "$HIDE" "$WORK/empty" $EXEC_START > "$WORK/daemon-solo.log" 2>&1 &
SOLO=$!
PIDS+=($SOLO)
for _ in $(seq 100); do DNSD_SOCK=/run/dnsd/dnsd.sock hidden /usr/bin/dnsd ps >/dev/null 2>&1 && break; sleep 0.1; done
DNSD_SOCK=/run/dnsd/dnsd.sock hidden /usr/bin/dnsd ps >/dev/null || fail "the daemon of the shipped config did not answer at /run/dnsd/dnsd.sock: $(tail -3 "$WORK/daemon-solo.log")"
[ -n "$(ls -A /var/lib/dnsd)" ] || fail "the shipped config's daemon keeps no state in /var/lib/dnsd"
kill -TERM $SOLO
for _ in $(seq 100); do kill -0 $SOLO 2>/dev/null || break; sleep 0.1; done
! kill -0 $SOLO 2>/dev/null || fail "the daemon did not stop on SIGTERM"

step "two hosts on etcd, daemons started by the unit's ExecStart with config files"
underlay_create
underlay_addhost "${P}etcd" 198.18.0.254
underlay_etcd "${P}etcd"
# Host 1 sets every key in its file, away from the defaults where that can be seen; host 2 some,
# and its socket and log level by flag (a flag overrides the file), in hosts mode.
for n in 1 2; do
    underlay_addhost "${P}h$n" "198.18.0.$n"
    python3 - "$n" "$WORK" "$P" > "$WORK/h$n.json" <<'PY'
import json, sys
n, work, p = sys.argv[1], sys.argv[2], sys.argv[3]
config = json.load(open("/etc/dnsd/dnsd.json"))
config.update({"store": "etcd://198.18.0.254:2379", "host-id": f"{p}h{n}", "advertise": f"198.18.0.{n}",
               "state-dir": f"{work}/state-h{n}", "sock": f"{work}/h{n}.sock", "upstream": ["127.0.0.1:9"]})
if n == "1":
    config.update({"dns-mode": "dns", "lease-ttl": 7, "liveness-interval": 0.5, "metrics": "127.0.0.1:9153",
                   "docker-plugin": f"{work}/h1-docker.sock", "docker-api": f"{work}/no-dockerd.sock",
                   "upstream": ["127.0.0.1:9", "127.0.0.1:10"], "upstream-timeout": 300, "log-level": "info"})
else:
    config.update({"sock": f"{work}/not-here.sock", "log-level": "warning", "dns-mode": "hosts"})
print(json.dumps(config, indent=2))
PY
done
start_daemon() {  # N [FLAGS...]: the unit's ExecStart as systemd runs it (no inherited environment), host N's config file
    local n=$1; shift
    local command=${EXEC_START//\/etc\/dnsd\/dnsd.json/$WORK\/h$n.json}
    # shellcheck disable=SC2086
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin nsenter --net=/run/netns/"${P}h$n" unshare -m --propagation unchanged \
        bash -c "$HIDE" "$WORK/empty" $command "$@" >> "$WORK/daemon-h$n.log" 2>&1 &
    PIDS+=($!)
    eval "DAEMON$n=$!"
}
client() { local n=$1; shift; DNSD_SOCK="$WORK/h$n.sock" hidden /usr/bin/dnsd "$@"; }
started() {  # N: the daemon answers and logged that it is ready
    for _ in $(seq 150); do client "$1" ps >/dev/null 2>&1 && [ "$(grep -c ' ready' "$WORK/daemon-h$1.log")" -ge "${2:-1}" ] && return 0; sleep 0.1; done
    fail "the daemon of h$1 did not start: $(tail -5 "$WORK/daemon-h$1.log")"
}
eventually() {  # SECONDS COMMAND...: until COMMAND succeeds
    local seconds=$1; shift
    for _ in $(seq $((seconds * 10))); do "$@" && return 0; sleep 0.1; done
    "$@"
}
# Swift's libraries are nowhere in a running daemon (ldd cannot see what dlopen loads).
no_swift_in() { ! grep -Eq "libswift|libFoundation|libdispatch|/opt/swift" "/proc/$1/maps" || fail "process $1 maps Swift's libraries"; }
start_daemon 1
start_daemon 2 --sock "$WORK/h2.sock" --log-level debug
started 1; started 2
no_swift_in "$DAEMON1"; no_swift_in "$DAEMON2"
[ "$(readlink "/proc/$DAEMON1/exe")" = /usr/bin/dnsd-daemon ] || fail "h1 runs $(readlink "/proc/$DAEMON1/exe"), not the installed dnsd-daemon"
# Host 1's keys, each seen: the ready line (version, host-id, store, sock, mode), the state
# directory, the lease's TTL in etcd, the metrics, the docker plugin socket and docker-api path.
READY=$(grep ' ready' "$WORK/daemon-h1.log")
for want in "dnsd $VERSION (commit" "host=${P}h1" "mode=dns" "socket=$WORK/h1.sock" "store=etcd://198.18.0.254:2379"; do
    grep -qF "$want" <<< "$READY" || fail "h1's ready line lacks '$want': $READY"
done
[ -n "$(ls -A "$WORK/state-h1")" ] || fail "h1 keeps nothing in its state-dir"
LEASES=$(ip netns exec "${P}etcd" etcdctl --endpoints=198.18.0.254:2379 lease list | grep -Eo '[0-9a-f]{16}')
TTLS=$(for l in $LEASES; do ip netns exec "${P}etcd" etcdctl --endpoints=198.18.0.254:2379 lease timetolive "$l"; done)
grep -q "granted with TTL(7s)" <<< "$TTLS" || fail "no lease with h1's lease-ttl 7: $TTLS"
METRICS=$(eventually 5 nsenter --net=/run/netns/"${P}h1" curl -sf -m 5 http://127.0.0.1:9153/metrics) || fail "h1's metrics (from its file) do not answer"
grep -q "^dnsd_build_info{.*version=\"$VERSION\"" <<< "$METRICS" || fail "no dnsd_build_info with version $VERSION"
eventually 5 test -S "$WORK/h1-docker.sock" || fail "h1's docker-plugin socket (from its file) is not there"
# Host 2: its flags over its file.
[ ! -e "$WORK/not-here.sock" ] || fail "h2's --sock flag did not override its file"

step "the story: names across hosts at 127.0.0.11, ping over VXLAN, stop"
C1=${P}c01 C2=${P}c02 WEB=${P}web
CLEANUP_NETNS+=("$C1" "$C2" "$WEB")
client 1 network create --driver=overlay --subnet=192.168.0.0/24 vnet >/dev/null || fail "network create"
client 1 run --name="$C1" --net=vnet >/dev/null || fail "run on h1"
client 2 run --name="$C2" --net=vnet >/dev/null || fail "run on h2"
grep -q "watching networks" "$WORK/daemon-h2.log" || fail "h2 logs no debug lines: its --log-level flag did not override its file"
answer() { ip netns exec "$C1" dig +short +time=1 +tries=2 "$1" @127.0.0.11; }
answers() { [[ "$(answer "$1")" == $2 ]]; }  # $2: a pattern
eventually 5 answers "$C2.vnet" "192.168.0.*" || fail "dig $C2.vnet from $C1: '$(answer "$C2.vnet")'"
A2=$(answer "$C2.vnet")
ip netns exec "$C1" busybox ping -c 1 -w 3 "$A2" >/dev/null || fail "ping $C2 from $C1 over VXLAN"
eventually 5 grep -q "$C1" "/etc/netns/$C2/hosts" || fail "h2 (hosts mode) has no line for $C1 in $C2's hosts file"
nxdomain() { ip netns exec "$C1" dig +time=1 +tries=1 "$1" @127.0.0.11 | grep -q NXDOMAIN; }
client 2 stop "$C2" >/dev/null || fail "stop on h2"
eventually 5 nxdomain "$C2.vnet" || fail "$C2 still answers after stop"
client 2 run --name="$C2" --net=vnet >/dev/null || fail "run on h2 again"
eventually 5 answers "$C2.vnet" "192.168.0.*" || fail "dig $C2.vnet after the new run"
A2=$(answer "$C2.vnet")
# CNI as today: dnsd cni install links the installed plugin; a container added through it.
client 1 cni install --conf-dir "$WORK/cni/net.d" --bin-dir "$WORK/cni/bin" vnet >/dev/null || fail "dnsd cni install"
[ "$(readlink "$WORK/cni/bin/dnsd")" = /usr/bin/dnsd-cni ] || fail "the CNI plugin link points at '$(readlink "$WORK/cni/bin/dnsd")'"
ip netns add "$WEB"
# A container has a process in its namespace (an empty one is a container that died).
ip netns exec "$WEB" sleep 3600 &
PIDS+=($!)
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); p=c["plugins"][0]; p.update(cniVersion=c["cniVersion"], name=c["name"]); print(json.dumps(p))' \
    "$WORK/cni/net.d/"*vnet*.conflist > "$WORK/web.conf"
CNI_COMMAND=ADD CNI_CONTAINERID="${P}webid" CNI_NETNS=/run/netns/"$WEB" CNI_IFNAME=eth0 CNI_PATH="$WORK/cni/bin" \
    CNI_ARGS="K8S_POD_NAME=$WEB" hidden "$WORK/cni/bin/dnsd" < "$WORK/web.conf" > "$WORK/web.result" || fail "CNI ADD: $(cat "$WORK/web.result")"
eventually 5 answers "$WEB.vnet" "192.168.0.*" || fail "the CNI container $WEB does not answer"
AWEB=$(answer "$WEB.vnet")

step "upgrade to a newer package (new binaries); the daemons restart; sandboxes and containers stay attached and answering"
echo '{"store": "local", "state-dir": "/var/lib/dnsd", "sock": "/run/dnsd/dnsd.sock", "log-level": "warning"}' > /etc/dnsd/dnsd.json
dpkg-deb -R "$DEB" "$WORK/v2"
sed -i "s/^Version: .*/Version: $VERSION+1/" "$WORK/v2/DEBIAN/control"
python3 "$ROOT/scripts/stamp.py" upgrade00000 2099-01-01 "$WORK/v2/usr/bin/dnsd" "$WORK/v2/usr/bin/dnsd-daemon"
sed -i 's/"log-level": "info"/"log-level": "notice"/' "$WORK/v2/etc/dnsd/dnsd.json"
dpkg-deb --build --root-owner-group "$WORK/v2" "$WORK/dnsd_v2.deb" >/dev/null
dpkg -i --force-confold "$WORK/dnsd_v2.deb" >/dev/null || fail "dpkg -i of the newer package"
[ "$(dpkg-query -W -f='${Version}' dnsd)" = "$VERSION+1" ] || fail "the newer version is not installed"
grep -q '"warning"' /etc/dnsd/dnsd.json || fail "the upgrade replaced the edited config file"
[ -f /etc/dnsd/dnsd.json.dpkg-dist ] || fail "the newer package's config file was not set aside as dnsd.json.dpkg-dist"
hidden /usr/bin/dnsd version | grep -q "commit upgrade00000" || fail "dnsd version after the upgrade: $(hidden /usr/bin/dnsd version)"
readlink "/proc/$DAEMON1/exe" | grep -q "(deleted)" || fail "the running daemon's binary was not replaced"
kill -TERM "$DAEMON1" "$DAEMON2"
for _ in $(seq 150); do kill -0 "$DAEMON1" 2>/dev/null || kill -0 "$DAEMON2" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$DAEMON1" 2>/dev/null && ! kill -0 "$DAEMON2" 2>/dev/null || fail "a daemon did not stop on SIGTERM"
KEEP=(); for pid in "${PIDS[@]}"; do [ "$pid" = "$DAEMON1" ] || [ "$pid" = "$DAEMON2" ] || KEEP+=("$pid"); done; PIDS=("${KEEP[@]}")
for ns in "$C1" "$C2" "$WEB"; do ip netns list | grep -q "^$ns\b" || fail "$ns went with its daemon"; done
start_daemon 1
start_daemon 2 --sock "$WORK/h2.sock" --log-level debug
started 1 2; started 2 2
grep ' ready' "$WORK/daemon-h1.log" | tail -1 | grep -q "commit upgrade00000" || fail "h1 does not run the new binaries"
[ "$(readlink "/proc/$DAEMON1/exe")" = /usr/bin/dnsd-daemon ] || fail "h1 runs $(readlink "/proc/$DAEMON1/exe") after the restart"
client 1 ps | grep -q "$C1" || fail "h1 lost $C1 across the upgrade"
client 2 ps | grep -q "$C2" || fail "h2 lost $C2 across the upgrade"
eventually 5 answers "$C2.vnet" "$A2" || fail "$C2 does not answer with $A2 after the upgrade"
eventually 5 answers "$WEB.vnet" "$AWEB" || fail "the CNI container $WEB does not answer with $AWEB after the upgrade"
ip netns exec "$C1" busybox ping -c 1 -w 3 "$A2" >/dev/null || fail "ping after the upgrade"
C3=${P}c03
CLEANUP_NETNS+=("$C3")
client 2 run --name="$C3" --net=vnet >/dev/null || fail "run on h2 after the upgrade"
eventually 5 answers "$C3.vnet" "192.168.0.*" || fail "a sandbox made after the upgrade does not answer"

step "purge: nothing left"
CNI_COMMAND=DEL CNI_CONTAINERID="${P}webid" CNI_NETNS=/run/netns/"$WEB" CNI_IFNAME=eth0 CNI_PATH="$WORK/cni/bin" \
    CNI_ARGS="K8S_POD_NAME=$WEB" hidden "$WORK/cni/bin/dnsd" < "$WORK/web.conf" >/dev/null || fail "CNI DEL"
client 1 stop "$C1" >/dev/null || fail "stop $C1 on h1"
client 2 stop "$C2" >/dev/null || fail "stop $C2 on h2"
client 2 stop "$C3" >/dev/null || fail "stop $C3 on h2"
client 1 network rm vnet >/dev/null || fail "network rm"
set +eE
stop_processes
set -eE
dpkg -P dnsd >/dev/null || fail "dpkg -P"
INSTALLED=0
while read -r path; do
    [ -d "$path" ] && [ "$path" != /etc/dnsd ] && [ "$path" != /usr/share/doc/dnsd ] && continue
    [ ! -e "$path" ] || fail "$path is still there after the purge"
done < "$WORK/files"
for path in /lib/systemd/system/dnsd.service /etc/dnsd /var/lib/dnsd /run/dnsd /usr/share/doc/dnsd; do
    [ ! -e "$path" ] || fail "$path is still there after the purge"
done
if dpkg-query -W -f='${Status}' dnsd 2>/dev/null | grep -q ' installed$'; then fail "dpkg still lists dnsd as installed"; fi
