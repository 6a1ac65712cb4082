# Real container runtimes on simulated hosts: podman (CNI backend) and containerd (ctr --cni),
# each confined to a host's network namespace with `nsenter --net` (not `ip netns exec`, which
# remounts /sys and breaks runc's cgroups), each with its own state under a work directory.
# Sourced by scripts/demo-podman.sh and by the runtime tests (Tests/RuntimeTests), so the
# configuration lives in one place. What was verified and why each setting: ../shared/RUNTIMES.md.
#
#   rt_image DIR                      busybox image -> DIR/image.tar (localhost/dnsd-busybox:latest)
#   rt_podman_setup DIR HOSTNS SOCK NET DNSD   podman of one host, its CNI config for dnsd network NET
#   rt_podman DIR ARGS...             podman of that host
#   rt_podman_clean DIR               its containers, images, mounts and files gone
#   rt_containerd_start DIR HOSTNS    containerd of one host (ctr namespace "dnsd")
#   rt_ctr DIR ARGS...                ctr of that host, in its network namespace (for --cni)
#   rt_containerd_clean DIR           its tasks, containers, daemon, mounts and files gone
#   rt_dockerd_start DIR HOSTNS       dockerd 20.10 of one host: its own data-root, exec-root and socket,
#                                     no iptables; its own /run/docker/plugins (DIR/plugins) in a
#                                     mount namespace of its own, so each host's dockerd sees only
#                                     its own host's plugin sockets (dnsd.sock)
#   rt_dockerd_stop DIR [SIGNAL]      stops that dockerd (TERM: its containers stop with it; KILL: it
#                                     dies without telling its plugins)
#   rt_docker DIR ARGS...             the docker 20.10 client of that host (/usr/bin/docker)
#   rt_dockerd_clean DIR              its containers, images, daemon, mounts and files gone
#   rt_shared_begin FILE / rt_shared_end FILE NET...
#                                     machine-wide state the runtimes make (podman's blob cache,
#                                     libcni's result cache, /opt/cni for ctr): what did not exist
#                                     before goes afterwards, and network NET's cached results

RT_IMAGE=localhost/dnsd-busybox:latest

# A busybox-static root filesystem with the applets the tests use, a web page, and the image tar.
rt_image() {
  local dir=$1 root=$1/rootfs applet
  mkdir -p "$root/bin" "$root/etc" "$root/www" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/run"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh sleep cat echo ip ping nslookup wget httpd hostname ls true kill; do
    ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
  printf '127.0.0.1\tlocalhost\n' > "$root/etc/hosts"
  : > "$root/etc/resolv.conf"
  echo dnsd-busybox > "$root/etc/hostname"
  echo 'hello from dnsd-busybox' > "$root/www/index.html"
  tar -C "$root" -cf "$dir/rootfs.tar" .
  python3 "$(dirname "${BASH_SOURCE[0]}")/mkimage.py" "$dir/rootfs.tar" "$dir/image.tar" "$RT_IMAGE" /bin/sh
  rm -rf "$root" "$dir/rootfs.tar"
}

_rt_podman_env() {
  echo "CONTAINERS_CONF=$1/containers.conf CONTAINERS_STORAGE_CONF=$1/storage.conf"
}

# podman 4.3 with the CNI backend and runc (crun fails on hybrid cgroups), ulimits a root without
# CAP_SYS_RESOURCE can set, its storage and CNI configuration under DIR; `dnsd cni install` writes
# the conflist for NET (pointing at the daemon's socket SOCK) and links the plugin.
rt_podman_setup() {
  local dir=$1 hostns=$2 sock=$3 net=$4 dnsd=$5
  # Its exit command (`podman container cleanup`, which sends CNI DEL) refuses a run root longer
  # than 50 characters, and `podman run` then waits 20 s for it.
  [ ${#dir} -le 46 ] || { echo "podman directory too long (podman's run root must stay within 50 characters): $dir" >&2; return 1; }
  mkdir -p "$dir/net.d" "$dir/cni-bin" "$dir/tmp"
  echo "$hostns" > "$dir/hostns"
  cat > "$dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$dir/root"
runroot = "$dir/run"
EOF
  cat > "$dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
netns = "private"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
runtime = "runc"
tmp_dir = "$dir/tmp"

[network]
network_backend = "cni"
cni_plugin_dirs = ["$dir/cni-bin", "/usr/lib/cni"]
network_config_dir = "$dir/net.d"
default_network = "$net"
EOF
  "$dnsd" cni install --conf-dir "$dir/net.d" --bin-dir "$dir/cni-bin" --sock "$sock" "$net" >/dev/null
}

rt_podman() {
  local dir=$1; shift
  env $(_rt_podman_env "$dir") nsenter --net="/run/netns/$(cat "$dir/hostns")" podman "$@"
}

# Every container of that runtime removed as a user would (the runtime calls its plugins: CNI
# DEL, the Docker driver's Leave): what dnsd must clean up after. The *_clean functions then
# remove the rest.
rt_podman_rm() { [ -f "$1/containers.conf" ] && rt_podman "$1" rm -a -f -t 0 >/dev/null 2>&1; return 0; }
rt_docker_rm() {
  [ -S "$1/docker.sock" ] || return 0
  local ids; ids=$(rt_docker "$1" ps -aq 2>/dev/null)
  [ -z "$ids" ] || rt_docker "$1" rm -f $ids >/dev/null 2>&1
  return 0
}

rt_podman_clean() {
  local dir=$1
  [ -f "$dir/containers.conf" ] || { rm -rf "$dir"; return 0; }
  rt_podman "$dir" rm -a -f -t 0 >/dev/null 2>&1
  rt_podman "$dir" rmi -a -f >/dev/null 2>&1
  _rt_unmount_under "$dir"
  rm -rf "$dir"
}

# containerd 1.6 with its own root, state and socket under DIR, in host namespace HOSTNS.
rt_containerd_start() {
  local dir=$1 hostns=$2 i
  mkdir -p "$dir"
  echo "$hostns" > "$dir/hostns"
  cat > "$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = "$dir/debug.sock"
  level = "warn"
[plugins."io.containerd.runtime.v2.task"]
  platforms = ["linux/amd64"]
EOF
  nsenter --net="/run/netns/$hostns" setsid containerd --config "$dir/config.toml" > "$dir/containerd.log" 2>&1 < /dev/null &
  echo $! > "$dir/containerd.pid"
  _rt_wait_until containerd "$dir/containerd.log" 100 ctr -a "$dir/containerd.sock" version
}

rt_ctr() {
  local dir=$1; shift
  nsenter --net="/run/netns/$(cat "$dir/hostns")" ctr -a "$dir/containerd.sock" -n dnsd "$@"
}

rt_containerd_clean() {
  local dir=$1 c
  [ -f "$dir/containerd.pid" ] || { rm -rf "$dir"; return 0; }
  if [ -S "$dir/containerd.sock" ]; then
    for c in $(rt_ctr "$dir" tasks ls -q 2>/dev/null); do rt_ctr "$dir" tasks kill -s KILL "$c" >/dev/null 2>&1; done
    sleep 0.3
    for c in $(rt_ctr "$dir" tasks ls -q 2>/dev/null); do rt_ctr "$dir" tasks rm -f "$c" >/dev/null 2>&1; done
    for c in $(rt_ctr "$dir" containers ls -q 2>/dev/null); do rt_ctr "$dir" containers rm "$c" >/dev/null 2>&1; done
    rt_ctr "$dir" images rm "docker.io/library/dnsd-busybox:latest" "$RT_IMAGE" >/dev/null 2>&1
  fi
  _rt_stop "$(cat "$dir/containerd.pid")" TERM 50
  # Shims left behind by a task that would not die.
  pkill -9 -f "containerd-shim.*$dir" 2>/dev/null
  _rt_unmount_under "$dir"
  rm -rf "$dir"
}

RT_SHARED_DIRS="/var/lib/containers /var/lib/cni /opt/cni /run/docker"

rt_dockerd_start() {
  local dir=$1 hostns=$2 i
  mkdir -p "$dir/plugins" "$dir/data" "$dir/exec" /run/docker/plugins
  echo "$hostns" > "$dir/hostns"
  echo '{}' > "$dir/daemon.json"
  # dockerd's mounts (layers, its plugin directory) stay in its mount namespace: every mount is
  # made a slave there (one by one: a host's /run or /tmp may be shared mounts of their own), so
  # nothing goes back. Its containers' namespace files (exec/netns) are visible outside, as when
  # dockerd runs in the host's mount namespace: dnsd watches them (a container whose processes
  # died while dockerd is away). That directory is a shared mount, a peer in both.
  mkdir -p "$dir/exec/netns"
  if ! awk -v d="$dir/exec/netns" '$5 == d {found=1} END {exit !found}' /proc/self/mountinfo; then
    mount --bind "$dir/exec/netns" "$dir/exec/netns" && mount --make-shared "$dir/exec/netns"
  fi
  nsenter --net="/run/netns/$hostns" unshare --mount --propagation unchanged \
    sh -c 'for m in $(cut -d" " -f5 /proc/self/mountinfo); do
             case "$m" in "$0"/exec/netns*) ;; *) mount --make-slave "$m" 2>/dev/null ;; esac
           done
           mount --bind "$0/plugins" /run/docker/plugins && exec dockerd --data-root "$0/data" --exec-root "$0/exec" \
      --pidfile "$0/dockerd.pid" -H "unix://$0/docker.sock" --storage-driver overlay2 --iptables=false --ip-forward=false \
      --ip-masq=false --bridge none --config-file "$0/daemon.json"' "$dir" > "$dir/dockerd.log" 2>&1 < /dev/null &
  echo $! > "$dir/launcher.pid"
  _rt_wait_until dockerd "$dir/dockerd.log" 150 rt_docker "$dir" version
}

rt_dockerd_stop() {
  _rt_stop "$(cat "$1/launcher.pid")" "${2:-TERM}" 150
}

rt_docker() {
  local dir=$1; shift
  /usr/bin/docker -H "unix://$dir/docker.sock" "$@"
}

rt_dockerd_clean() {
  local dir=$1
  [ -f "$dir/launcher.pid" ] || { rm -rf "$dir"; return 0; }
  if [ -S "$dir/docker.sock" ]; then
    rt_docker "$dir" rm -f $(rt_docker "$dir" ps -aq 2>/dev/null) >/dev/null 2>&1
    for n in $(rt_docker "$dir" network ls -q --filter type=custom 2>/dev/null); do rt_docker "$dir" network rm "$n" >/dev/null 2>&1; done
  fi
  _rt_stop "$(cat "$dir/launcher.pid")" TERM 100
  # dockerd's own containerd and shims (their paths are under DIR).
  pkill -9 -f "$dir/exec" 2>/dev/null
  _rt_unmount_under "$dir"
  rm -rf "$dir"
}

rt_shared_begin() {
  local file=$1 d
  : > "$file"
  for d in $RT_SHARED_DIRS; do [ -e "$d" ] || echo "$d" >> "$file"; done
}

rt_shared_end() {
  local file=$1 d net; shift
  # ctr never calls DEL for a detached task, so libcni keeps its result: NET's go.
  for net in "$@"; do rm -f /var/lib/cni/results/"$net"-*; done
  [ -f "$file" ] || return 0
  while read -r d; do rm -rf "$d"; done < "$file"
  rm -f "$file"
}

# WHAT answers COMMAND... within TRIES tenths of a second, or its log's last lines and failure.
_rt_wait_until() {
  local what=$1 log=$2 tries=$3 i; shift 3
  for i in $(seq "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$what did not start: $(tail -3 "$log")" >&2
  return 1
}

# Sends SIGNAL to PID, waits up to TRIES tenths of a second for it to go, then SIGKILL.
_rt_stop() {
  local pid=$1 signal=$2 tries=$3
  kill -s "$signal" "$pid" 2>/dev/null
  for _ in $(seq "$tries"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
}

# Every mount under DIR (overlay roots, shm, netns files), deepest first.
_rt_unmount_under() {
  local dir=$1 m
  for m in $(awk -v d="$dir" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null
  done
}
