#!/bin/bash
# Removes what test runs that died left behind, and nothing else: for each run recorded under
# /tmp/dnsdt-runs/TOKEN whose test process is gone, its recorded children (if they are still the
# same processes), every namespace and /etc/netns entry whose name carries its token, the links
# it recorded, its temporary files. A run whose test process still lives (a concurrent run) is
# left alone. See Tests/TestSupport/TestRun.swift.
set -u
starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }
for dir in /tmp/dnsdt-runs/*/; do
  [ -d "$dir" ] || continue
  token=$(basename "$dir")
  if [ -f "$dir/owner" ]; then
    read -r owner start < "$dir/owner"
    if [ -n "${owner:-}" ] && [ "$(starttime "$owner")" = "$start" ]; then continue; fi
  fi
  swept=0
  if [ -f "$dir/pids" ]; then
    while read -r pid start; do
      if [ "$(starttime "$pid")" = "$start" ]; then kill -9 "$pid" 2>/dev/null && swept=$((swept + 1)); fi
    done < "$dir/pids"
  fi
  sleep 0.2
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -F -- "$token"); do
    ip netns del "$ns" 2>/dev/null && swept=$((swept + 1))
  done
  for entry in /etc/netns/*"$token"*; do [ -e "$entry" ] && rm -rf "$entry"; done
  if [ -f "$dir/links" ]; then
    while read -r link; do ip link del "$link" 2>/dev/null && swept=$((swept + 1)); done < "$dir/links"
  fi
  # Runtime state (podman, containerd) may hold mounts there.
  for m in $(awk -v t="$token" '$5 ~ "^/tmp/dnsdt-" && index($5, t) {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null; done
  pkill -9 -f "/tmp/dnsdt-[^ ]*$token" 2>/dev/null && swept=$((swept + 1))
  rm -rf /tmp/dnsdt-*"$token"* "$dir"
  echo "swept test run $token ($swept processes, namespaces and links)"
done
exit 0
