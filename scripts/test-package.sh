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

if dpkg-query -W -f='${Status}' dnsd 2>/dev/null | grep -q 'install ok installed'; then
    fail "a dnsd package is installed on this machine already; not touching it"
fi
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
dpkg -i "$DEB" >/dev/null || fail "dpkg -i refused the package"
INSTALLED=1
dpkg -L dnsd > "$WORK/files"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
for b in dnsd dnsd-daemon dnsd-cni; do
    LINKED=$(ldd "/usr/bin/$b")
    ! grep -q "not found" <<< "$LINKED" || fail "$b: a library is missing: $LINKED"
    ! grep -Eq "/opt/swift|libswift|libFoundation|libdispatch" <<< "$LINKED" || fail "$b links the Swift toolchain's libraries: $LINKED"
    # Each shared library comes from a package the package depends on.
    for lib in $(awk '/=>/ {print $3}' <<< "$LINKED"); do
        pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1) || pkg=""
        [ -z "$pkg" ] && pkg=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1)
        grep -qw "$pkg" <<< "$DEPENDS" || fail "$b links $lib from package '$pkg', which Depends ($DEPENDS) does not name"
    done
done
grep -aq "libcurl.so.4" /usr/bin/dnsd-daemon && grep -qw libcurl4 <<< "$DEPENDS" || fail "dnsd-daemon loads libcurl.so.4: Depends must name libcurl4"

step "the service unit"
UNIT=/lib/systemd/system/dnsd.service
if command -v systemd-analyze >/dev/null && systemd-analyze --version >/dev/null 2>&1; then
    systemd-analyze verify "$UNIT" || fail "systemd-analyze verify $UNIT"
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
[ -z "$(hidden ls -A /opt/swift)" ] || fail "/opt/swift is not hidden"
hidden /usr/bin/dnsd version | grep -q "^dnsd $VERSION (commit [0-9a-f]" || fail "dnsd version: $(hidden /usr/bin/dnsd version)"
hidden /usr/bin/dnsd --version | grep -q "^dnsd $VERSION" || fail "dnsd --version"
hidden /usr/bin/dnsd --help | grep -q "answers their names at 127.0.0.11 inside each one" || fail "dnsd --help"

step "bad config files: one line, nothing started"
refused() {  # CONFIG-TEXT EXPECTED-SUBSTRING
    printf '%s' "$1" > "$WORK/bad.json"
    local out rc=0
    out=$(hidden /usr/bin/dnsd daemon --config "$WORK/bad.json" --sock "$WORK/bad.sock" --state-dir "$WORK/bad" 2>&1) || rc=$?
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

step "two hosts on etcd, daemons started by the unit's ExecStart with config files"
underlay_create
underlay_addhost "${P}etcd" 198.18.0.254
underlay_etcd "${P}etcd"
# Host 1 sets every key in its file; host 2 only some, and its socket and log level by flag
# (a flag overrides the file).
for n in 1 2; do
    underlay_addhost "${P}h$n" "198.18.0.$n"
    python3 - "$n" "$WORK" "$P" > "$WORK/h$n.json" <<'PY'
import json, sys
n, work, p = sys.argv[1], sys.argv[2], sys.argv[3]
config = json.load(open("/etc/dnsd/dnsd.json"))
config.update({"store": "etcd://198.18.0.254:2379", "host-id": f"{p}h{n}", "advertise": f"198.18.0.{n}",
               "state-dir": f"{work}/state-h{n}", "sock": f"{work}/h{n}.sock", "upstream": ["127.0.0.1:9"]})
if n == "1":
    config.update({"dns-mode": "dns", "lease-ttl": 10, "liveness-interval": 1, "metrics": "127.0.0.1:9153",
                   "docker-plugin": f"{work}/h1-docker.sock", "docker-api": f"{work}/no-dockerd.sock",
                   "upstream-timeout": 1500, "log-level": "info"})
else:
    config.update({"sock": f"{work}/not-here.sock", "log-level": "debug"})
print(json.dumps(config, indent=2))
PY
done
start_daemon() {  # N [FLAGS...]: the unit's ExecStart, its config file replaced by host N's
    local n=$1; shift
    local command=${EXEC_START//\/etc\/dnsd\/dnsd.json/$WORK\/h$n.json}
    # shellcheck disable=SC2086
    nsenter --net=/run/netns/"${P}h$n" unshare -m --propagation unchanged bash -c "$HIDE" \
        "$WORK/empty" $command "$@" >> "$WORK/daemon-h$n.log" 2>&1 &
    PIDS+=($!)
    eval "DAEMON$n=$!"
}
start_daemon 1
start_daemon 2 --sock "$WORK/h2.sock" --log-level info
client() { local n=$1; shift; DNSD_SOCK="$WORK/h$n.sock" hidden /usr/bin/dnsd "$@"; }
for n in 1 2; do
    for _ in $(seq 100); do client "$n" ps >/dev/null 2>&1 && break; sleep 0.1; done
    client "$n" ps >/dev/null || fail "the daemon of h$n did not start: $(tail -5 "$WORK/daemon-h$n.log")"
done
[ ! -e "$WORK/not-here.sock" ] || fail "h2's --sock flag did not override its file"
grep -q "\"$P\"h2\|host=${P}h2\|${P}h2" "$WORK/daemon-h2.log" || true
! grep -q "debug" "$WORK/daemon-h2.log" || fail "h2's --log-level flag did not override its file"
grep -q "dnsd $VERSION (commit" "$WORK/daemon-h1.log" || fail "the daemon does not log its version at start"
METRICS=$(nsenter --net=/run/netns/"${P}h1" curl -sf -m 5 http://127.0.0.1:9153/metrics) || fail "h1's metrics (from its file) do not answer"
grep -q "^dnsd_build_info{.*version=\"$VERSION\"" <<< "$METRICS" || fail "no dnsd_build_info with version $VERSION"
[ -S "$WORK/h1-docker.sock" ] || fail "h1's docker-plugin socket (from its file) is not there"

step "the story: names across hosts at 127.0.0.11, ping over VXLAN, stop"
C1=${P}c01 C2=${P}c02
CLEANUP_NETNS+=("$C1" "$C2")
client 1 network create --driver=overlay --subnet=192.168.0.0/24 vnet >/dev/null || fail "network create"
client 1 run --name="$C1" --net=vnet >/dev/null || fail "run on h1"
client 2 run --name="$C2" --net=vnet >/dev/null || fail "run on h2"
answer() { ip netns exec "$C1" dig +short +time=1 +tries=2 "$1" @127.0.0.11; }
A2=$(answer "$C2.vnet")
[[ "$A2" == 192.168.0.* ]] || fail "dig $C2.vnet from $C1: '$A2'"
ip netns exec "$C1" busybox ping -c 1 -w 3 "$A2" >/dev/null || fail "ping $C2 from $C1 over VXLAN"
client 2 stop "$C2" >/dev/null || fail "stop on h2"
for _ in $(seq 50); do ip netns exec "$C1" dig +time=1 +tries=1 "$C2.vnet" @127.0.0.11 | grep -q NXDOMAIN && break; sleep 0.1; done
ip netns exec "$C1" dig +time=1 +tries=1 "$C2.vnet" @127.0.0.11 | grep -q NXDOMAIN || fail "$C2 still answers after stop"
client 2 run --name="$C2" --net=vnet >/dev/null || fail "run on h2 again"
# CNI as today: dnsd cni install links the installed plugin, which answers VERSION.
client 1 cni install --conf-dir "$WORK/cni/net.d" --bin-dir "$WORK/cni/bin" vnet >/dev/null || fail "dnsd cni install"
[ "$(readlink "$WORK/cni/bin/dnsd")" = /usr/bin/dnsd-cni ] || fail "the CNI plugin link points at '$(readlink "$WORK/cni/bin/dnsd")'"
CNI_COMMAND=VERSION hidden "$WORK/cni/bin/dnsd" < /dev/null | grep -q supportedVersions || fail "the installed CNI plugin does not answer VERSION"
A2=$(answer "$C2.vnet")
[[ "$A2" == 192.168.0.* ]] || fail "dig $C2.vnet after the new run: '$A2'"

step "upgrade to a newer package; the daemons restart; sandboxes stay attached and answering"
echo '{"store": "local", "state-dir": "/var/lib/dnsd", "sock": "/run/dnsd/dnsd.sock", "log-level": "warning"}' > /etc/dnsd/dnsd.json
dpkg-deb -R "$DEB" "$WORK/v2"
sed -i "s/^Version: .*/Version: $VERSION+1/" "$WORK/v2/DEBIAN/control"
dpkg-deb --build --root-owner-group "$WORK/v2" "$WORK/dnsd_v2.deb" >/dev/null
dpkg -i --force-confold "$WORK/dnsd_v2.deb" >/dev/null || fail "dpkg -i of the newer package"
[ "$(dpkg-query -W -f='${Version}' dnsd)" = "$VERSION+1" ] || fail "the newer version is not installed"
grep -q '"warning"' /etc/dnsd/dnsd.json || fail "the upgrade replaced the edited config file"
kill -TERM "$DAEMON1" "$DAEMON2"
wait "$DAEMON1" "$DAEMON2" 2>/dev/null || true
ip netns list | grep -q "^$C1\b" && ip netns list | grep -q "^$C2\b" || fail "a sandbox went with its daemon"
start_daemon 1
start_daemon 2 --sock "$WORK/h2.sock" --log-level info
for n in 1 2; do
    for _ in $(seq 100); do client "$n" ps >/dev/null 2>&1 && break; sleep 0.1; done
done
client 1 ps | grep -q "$C1" || fail "h1 lost $C1 across the upgrade"
client 2 ps | grep -q "$C2" || fail "h2 lost $C2 across the upgrade"
[ "$(answer "$C2.vnet")" = "$A2" ] || fail "$C2 does not answer with $A2 after the upgrade"
ip netns exec "$C1" busybox ping -c 1 -w 3 "$A2" >/dev/null || fail "ping after the upgrade"

step "purge: nothing left"
client 1 stop "$C1" >/dev/null || fail "stop $C1 on h1"
client 2 stop "$C2" >/dev/null || fail "stop $C2 on h2"
client 1 network rm vnet >/dev/null || fail "network rm"
set +eE
stop_processes
set -eE
dpkg -P dnsd >/dev/null || fail "dpkg -P"
INSTALLED=0
while read -r path; do
    [ -d "$path" ] && continue
    [ ! -e "$path" ] || fail "$path is still there after the purge"
done < "$WORK/files"
[ ! -e /lib/systemd/system/dnsd.service ] && [ ! -e /etc/dnsd ] || fail "the unit or /etc/dnsd is still there"
if dpkg-query -W -f='${Status}' dnsd 2>/dev/null | grep -q ' installed$'; then fail "dpkg still lists dnsd as installed"; fi
