#!/bin/bash
# Builds dnsd_VERSION_amd64.deb from release binaries (linked with -static-stdlib: no Swift on
# the target host) with dpkg-deb alone. The binaries are copied and stamped with the git commit
# and the build date (scripts/stamp.py); the man pages come from ArgumentParser's
# generate-manual tool (make deb builds it), run on these very binaries.
# usage: scripts/mkdeb.sh BINDIR VERSION OUTDIR
set -euo pipefail
BIN=$1 VERSION=$2 OUT=$3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MANUAL_TOOL=$ROOT/.build/debug/generate-manual
for f in dnsd dnsd-daemon dnsd-cni; do [ -x "$BIN/$f" ] || { echo "mkdeb: no $BIN/$f (make release)" >&2; exit 1; }; done
[ -x "$MANUAL_TOOL" ] || { echo "mkdeb: no $MANUAL_TOOL (swift build --product generate-manual)" >&2; exit 1; }
STAGE=$(mktemp -d /tmp/dnsd-deb-XXXXXX)
MANUALS=$(mktemp -d /tmp/dnsd-man-XXXXXX)
SHLIBS=$(mktemp -d /tmp/dnsd-shlibs-XXXXXX)
trap 'rm -rf "$STAGE" "$MANUALS" "$SHLIBS"' EXIT
chmod 0755 "$STAGE"
mkdir -p "$MANUALS/dnsd" "$MANUALS/dnsd-daemon"
"$MANUAL_TOOL" "$BIN/dnsd" --section 8 --output-directory "$MANUALS/dnsd"
"$MANUAL_TOOL" "$BIN/dnsd-daemon" --section 8 --output-directory "$MANUALS/dnsd-daemon"

install -d "$STAGE/DEBIAN" "$STAGE/usr/bin" "$STAGE/lib/systemd/system" "$STAGE/etc/dnsd" "$STAGE/usr/share/man/man8" \
    "$STAGE/usr/share/doc/dnsd" "$STAGE/usr/share/bash-completion/completions" "$STAGE/usr/share/zsh/vendor-completions" \
    "$STAGE/usr/share/fish/vendor_completions.d"
for f in dnsd dnsd-daemon dnsd-cni; do install -m 0755 -s "$BIN/$f" "$STAGE/usr/bin/$f"; done
COMMIT=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT-modified"
python3 "$ROOT/scripts/stamp.py" "$COMMIT" "$(date -u +%Y-%m-%d)" "$STAGE/usr/bin/dnsd" "$STAGE/usr/bin/dnsd-daemon"
install -m 0644 "$ROOT/packaging/dnsd.service" "$STAGE/lib/systemd/system/dnsd.service"
install -m 0644 "$ROOT/packaging/dnsd.json" "$STAGE/etc/dnsd/dnsd.json"
install -m 0644 "$ROOT/packaging/copyright" "$STAGE/usr/share/doc/dnsd/copyright"
gzip -9n < "$MANUALS/dnsd/dnsd.8" > "$STAGE/usr/share/man/man8/dnsd.8.gz"
sed 's/^\.Dt DNSD 8/.Dt DNSD-DAEMON 8/' "$MANUALS/dnsd-daemon/dnsd.8" | gzip -9n > "$STAGE/usr/share/man/man8/dnsd-daemon.8.gz"
"$STAGE/usr/bin/dnsd" --generate-completion-script bash > "$STAGE/usr/share/bash-completion/completions/dnsd"
"$STAGE/usr/bin/dnsd" --generate-completion-script zsh > "$STAGE/usr/share/zsh/vendor-completions/_dnsd"
"$STAGE/usr/bin/dnsd" --generate-completion-script fish > "$STAGE/usr/share/fish/vendor_completions.d/dnsd.fish"

# The shared libraries' packages, with the versions the binaries need (dpkg-shlibdeps reads
# their symbol versions); libcurl is loaded at run time (dlopen) and nft is run: named by hand.
mkdir -p "$SHLIBS/debian"
printf 'Source: dnsd\n\nPackage: dnsd\nArchitecture: amd64\n' > "$SHLIBS/debian/control"
LIBS=$(cd "$SHLIBS" && dpkg-shlibdeps -O "$STAGE/usr/bin/dnsd" "$STAGE/usr/bin/dnsd-daemon" "$STAGE/usr/bin/dnsd-cni" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$LIBS" ] || { echo "mkdeb: dpkg-shlibdeps found no libraries" >&2; exit 1; }
cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: dnsd
Version: $VERSION
Architecture: amd64
Maintainer: dnsd developers <dnsd@localhost>
Depends: $LIBS, libcurl4, nftables
Recommends: iproute2
Suggests: etcd-server
Section: net
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Description: container names across hosts: VXLAN overlay networks with embedded DNS
 dnsd joins containers (network namespaces) on many hosts into VXLAN overlay networks and
 answers their names at 127.0.0.11 inside each one, keeping their hosts files in step. Records
 live in a shared store (etcd, Consul, or a local one for a single host). It serves podman and
 containerd through its CNI plugin and Docker as a network and IPAM driver.
CONTROL
echo /etc/dnsd/dnsd.json > "$STAGE/DEBIAN/conffiles"
cat > "$STAGE/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
# The service is not enabled or started by the install (the configuration names the store);
# an upgrade restarts a running daemon, which takes every sandbox and container back.
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    if [ "$1" = configure ] && [ -n "$2" ]; then systemctl try-restart dnsd.service || true; fi
fi
exit 0
SCRIPT
cat > "$STAGE/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
# Removal stops the daemon (SIGTERM: sandboxes stay, their names lapse with its lease); an
# upgrade leaves it running until postinst restarts it.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then systemctl stop dnsd.service || true; fi
exit 0
SCRIPT
cat > "$STAGE/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
# Purge removes the daemon's state (journal, cluster cache, local store) and its runtime directory.
set -e
if [ "$1" = purge ]; then
    rm -rf /var/lib/dnsd /run/dnsd
    # An enabled service's link (what deb-systemd-helper purge does, by hand).
    rm -f /etc/systemd/system/multi-user.target.wants/dnsd.service
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
SCRIPT
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"
mkdir -p "$OUT"
dpkg-deb --build --root-owner-group "$STAGE" "$OUT/dnsd_${VERSION}_amd64.deb" >/dev/null
echo "$OUT/dnsd_${VERSION}_amd64.deb"
