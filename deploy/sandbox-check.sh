#!/usr/bin/env bash
# Shows that tandem works inside deploy/tandem.service's sandbox where systemd can't run the unit
# (a container whose PID 1 is not systemd): on the namespace lab of deploy/lab.sh, node a runs
# VRRP with the virtual MAC, a low port and the proxy, as an unprivileged user holding only the
# unit's capabilities (setpriv: bounding, inheritable and ambient sets, no new privileges), with
# /proc/sys read-only but for /proc/sys/net/ipv4/conf, as ProtectKernelTunables= and the unit's
# ReadWritePaths= leave it. Node b, a plain root tandem, is its peer. Node a must become master
# and serve through the VIP, reload on SIGHUP and hand over on SIGTERM; strace -f records every
# system call it made: each must be one the unit's SystemCallFilter= allows (expanded by
# systemd-analyze), and each socket's family one of RestrictAddressFamilies=.
# As root; needs strace and systemd-analyze. Nothing is left behind (lab_down).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lab.sh
source "$root/deploy/lab.sh"
lab_require_root
for tool in strace setpriv unshare systemd-analyze; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
trap lab_down EXIT
lab_build_tandem "$root"
lab_up
lab_start_backends
# What node a writes (its access log, the trace), as the unit's LogsDirectory= is the user's.
chmod 0755 "$LAB_DIR"
out=$LAB_DIR/node-a
install -d -o 65534 -g 65534 "$out"

unit=$root/deploy/tandem.service
# setpriv's spelling of the unit's set: CAP_NET_RAW CAP_NET_ADMIN becomes +net_raw,+net_admin.
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_//g; s/ /,+/g; s/^/+/')
# Node a as the packaged config would run it: an admin listener and an access log too.
virtual_mac() { sed 's/^      virtual_ips: \(.*\)$/      virtual_ips: \1\n      virtual_mac: true/' "$1"; }
{
  virtual_mac "$root/config/demo-node-a.yaml"
  printf 'admin: { listen: 127.0.0.1:9900 }\naccess_log: { format: json, path: %s/access.log }\n' "$out"
} >"$LAB_DIR/node-a.yaml"
virtual_mac "$root/config/demo-node-b.yaml" >"$LAB_DIR/node-b.yaml"
"$TANDEM_BIN" check --config "$LAB_DIR/node-a.yaml" >/dev/null

# As systemd does it: both bind mounts first, then /proc/sys alone remounted read-only (a bind
# mount of a read-only mount would be read-only too).
sandboxed="mount --bind /proc/sys /proc/sys \
  && mount --bind /proc/sys/net/ipv4/conf /proc/sys/net/ipv4/conf \
  && mount -o remount,bind,ro /proc/sys \
  && exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
     --bounding-set=-all,$caps --inh-caps=-all,$caps --ambient-caps=-all,$caps \
     strace -f -qq -o $out/trace.txt \
     $TANDEM_BIN run --config $LAB_DIR/node-a.yaml"
lab_spawn "$LAB_A" "$LAB_DIR/node-a.log" unshare --mount --propagation private sh -c "$sandboxed"
node_a=$LAB_LAST_PID
lab_spawn "$LAB_B" "$LAB_DIR/node-b.log" "$TANDEM_BIN" run --config "$LAB_DIR/node-b.yaml"

a_holds_vip() { ip -n "$LAB_A" -o -4 addr show | grep -q " $LAB_VIP/"; }
serves() { lab_curl_vip | grep -q " via $1\$"; }
lab_wait 20 "sandboxed node a holds the VIP" a_holds_vip
lab_wait 10 "sandboxed node a serves through the VIP" serves 198.51.100.11
say "sandboxed node a holds the VIP on $(ip -n "$LAB_A" -o -4 addr show | awk -v vip=" $LAB_VIP/" 'index($0, vip) { print $2 }') and serves: $(lab_curl_vip)"
[ "$(ip netns exec "$LAB_A" sysctl -n net.ipv4.conf.eth0.arp_ignore)" = 1 ] || die "arp_ignore not raised"
lab_wait 5 "an access log line" test -s "$out/access.log"

# ip netns exec, unshare, sh and setpriv each exec the next: the spawned process is strace.
tandem_pid=$(pgrep -P "$node_a" -x tandem)
kill -HUP "$tandem_pid"
lab_wait 5 "the reload" grep -q "config reloaded" "$LAB_DIR/node-a.log"
kill -TERM "$tandem_pid"
wait "$node_a" || die "node a exited with an error: $(tail -n 5 "$LAB_DIR/node-a.log")"
lab_wait 5 "node b serves after node a's hand-over" serves 198.51.100.12
# What the sandbox would cause: an error, or a warning of something refused. (strace slows
# every system call down, so VRRP timers fire late and peers may briefly disagree: not these.)
if grep -E ' ERROR |( WARN .*(cannot|denied|not permitted|Read-only))' "$LAB_DIR/node-a.log"; then
  die "node a logged the lines above"
fi

# What the unit's filter allows: its allow list, less its deny list, plus its last allow list.
expand() {
  local group
  for group in "$@"; do
    systemd-analyze syscall-filter --no-pager "$group" | awk 'NR > 1 && $1 !~ /^#/ { print $1 }' |
      while read -r name; do
        case "$name" in @*) expand "$name" ;; *) echo "$name" ;; esac
      done
  done
}
mapfile -t filters < <(sed -n 's/^SystemCallFilter=//p' "$unit")
allowed=$(comm -23 <(expand ${filters[0]} | sort -u) <(expand ${filters[1]#\~} | sort -u))
allowed=$(printf '%s\n' "$allowed" ${filters[2]} | sort -u)
# Trace lines: "PID name(arguments..." (a call another thread interrupted resumes on a line of
# its own, "PID <... name resumed>", counted once already).
used=$(sed -n 's/^[0-9]\+ \+\([a-z_0-9]\+\)(.*/\1/p' "$out/trace.txt" | sort | uniq -c)
denied=$(comm -23 <(awk '{ print $2 }' <<<"$used") <(printf '%s\n' "$allowed"))
say "system calls made: $(wc -l <<<"$used") kinds; outside the unit's filter: ${denied:-none}"
[ -z "$denied" ] || die "the unit's SystemCallFilter= would refuse: $denied"
families=$(grep -o 'socket(AF_[A-Z0-9]\+' "$out/trace.txt" | sed 's/socket(//' | sort -u)
allowed_families=$(sed -n 's/^RestrictAddressFamilies=//p' "$unit" | tr ' ' '\n' | sort -u)
stray=$(comm -23 <(printf '%s\n' "$families") <(printf '%s\n' "$allowed_families"))
say "socket families: $(echo $families); outside RestrictAddressFamilies=: ${stray:-none}"
[ -z "$stray" ] || die "the unit's RestrictAddressFamilies= would refuse: $stray"
say "the sandboxed node worked; the system calls it made, with how often:"
awk '{ printf "%s(%s) ", $2, $1 } END { print "" }' <<<"$used" | fold -s -w 100 | sed 's/^/    /'
