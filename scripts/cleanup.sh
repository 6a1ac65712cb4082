# What a demo or benchmark started and made goes when it exits, also on failure or interruption.
# Sourced after the script set WORK (a directory, removed). The script adds to PIDS the
# processes it starts (stopped newest first, so daemons stop before the store they use) and to
# CLEANUP_NETNS the namespaces it makes, as names or extended regular expressions (each deleted
# with its /etc/netns directory).
PIDS=()
CLEANUP_NETNS=()

stop_processes() {  # every process in PIDS, newest first, each given 5 s before SIGKILL
    local i p state
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        p=${PIDS[i]}
        kill "$p" 2>/dev/null || continue
        for _ in $(seq 100); do
            # Gone, or exited and waiting to be reaped (a zombie, which kill -0 still finds).
            state=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1) || break
            [ -z "$state" ] || [ "$state" = Z ] && break
            sleep 0.05
        done
        # Either may fail (already gone, or exited by a signal): not an error under set -e.
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
}

cleanup() {
    set +e
    stop_processes
    local pattern n
    for pattern in "${CLEANUP_NETNS[@]}"; do
        for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^(${pattern})$"); do ip netns del "$n" 2>/dev/null; done
        for n in $(ls /etc/netns 2>/dev/null | grep -E "^(${pattern})$"); do rm -rf "/etc/netns/$n"; done
    done
    if [ -n "${WORK:-}" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM
