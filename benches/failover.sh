#!/usr/bin/env bash
# Failover, side by side in one run: tandem vs keepalived 2.2.7 + HAProxy 2.6 (Debian packages),
# on a throwaway network of namespaces (the lab of deploy/lab.sh). Run as root, from anywhere:
#
#   sudo benches/failover.sh           (TANDEM_BIN=path skips the build)
#
# Both pairs: node a (priority 150) and node b (100), VRRP v3 with 50 ms adverts, preempt, an HTTP
# proxy on the VIP 198.51.100.10:80 doing round robin over s1/s2 with HTTP health checks.
# tandem runs config/demo-node-{a,b}.yaml (which track eth0: FAULT while the link is down, as
# keepalived does by default); keepalived and HAProxy get the equivalent configs
# written below. A client opens a new connection every 5 ms (an HTTP GET, "Connection: close")
# for 4 s per scenario; the fault comes 1 s in. Reported per scenario:
#   gap     longest time between two successful responses (the outage as the client saw it)
#   failed  attempts without a 200 within 1 s (refused, reset, or timed out)
#   VIP off a  whether, and how fast, the VIP left node a's interface (checked for 3 s)
# Scenarios:
#   (a) link down: node a's switch port (the switch-side veth) goes down.
#   (b) proxy killed: kill -9 of tandem; for the pair, kill -9 of haproxy only, with keepalived
#       tracking it the usual way (vrrp_script every 1 s, fall 1, weight -60: 150 -> 90 < 100).
#       The check reads haproxy's own pid file, since `pidof haproxy`/`killall -0 haproxy` would
#       also see node b's haproxy: both nodes share one PID namespace on this machine.
#   (b2) kill -9 of keepalived (both its processes) and haproxy: everything dies, as tandem does in (b).
#   (c) planned handover: SIGTERM to tandem; for the pair, SIGTERM to keepalived (what
#       `systemctl stop keepalived` sends) while HAProxy keeps running.
# Everything it creates is removed on exit, also on Ctrl-C or failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lab.sh
. "$root/deploy/lab.sh"

lab_require_root
missing=()
command -v keepalived >/dev/null || missing+=(keepalived)
command -v haproxy >/dev/null || missing+=(haproxy)
if [ "${#missing[@]}" -gt 0 ]; then
  die "${missing[*]} not installed; install with: apt-get install keepalived haproxy"
fi
trap lab_down EXIT
trap 'exit 130' INT TERM
lab_build_tandem "$root"

say "versions: $("$TANDEM_BIN" --version 2>/dev/null || echo tandem) | $(keepalived --version 2>&1 | head -1) | $(haproxy -v | head -1 | cut -d' ' -f1-3)"
lab_up
lab_start_backends
DURATION=4   # seconds of client traffic per scenario; the fault comes 1 s in
declare -A RESULT

# measure KEY FAULT...: runs the client, applies FAULT 1 s in, records "gap / failed" and VIP off a.
measure() {
  local key=$1
  shift
  local out="$LAB_DIR/$key.out" gone
  lab_client_start "$DURATION" "$out"
  "$@"
  gone=$(lab_vip_gone_within "$LAB_A" 3)
  lab_client_wait "$out"
  lab_client_read "$out"
  RESULT[$key]="$CLIENT_GAP_MS ms / $CLIENT_FAILED"
  RESULT[$key.vip]=$([ "$gone" = no ] && echo "no (still there)" || echo "yes, $gone")
  say "  gap $CLIENT_GAP_MS ms, $CLIENT_FAILED of $CLIENT_ATTEMPTS failed ($CLIENT_KINDS); VIP off a: ${RESULT[$key.vip]}"
}

link() { ip -n "$LAB_SW" link set pa "$1"; }

# ---------------------------------------------------------------- tandem
start_tandem_a() {
  lab_spawn "$LAB_A" "$LAB_DIR/tandem-a.log" "$TANDEM_BIN" run --config "$root/config/demo-node-a.yaml"
  TANDEM_A=$LAB_LAST_PID
}
kill_tandem_a() { kill -KILL "$TANDEM_A"; wait "$TANDEM_A" 2>/dev/null || true; }
term_tandem_a() { kill -TERM "$TANDEM_A"; }

say "tandem: starting node a and node b"
start_tandem_a
lab_spawn "$LAB_B" "$LAB_DIR/tandem-b.log" "$TANDEM_BIN" run --config "$root/config/demo-node-b.yaml"
TANDEM_B=$LAB_LAST_PID
lab_wait_master a

say "tandem (a): link down"
measure tandem.a link down
link up
lab_wait_master a

say "tandem (b): kill -9"
measure tandem.b kill_tandem_a
start_tandem_a
lab_wait_master a

say "tandem (c): SIGTERM"
measure tandem.c term_tandem_a
status=0
wait "$TANDEM_A" 2>/dev/null || status=$?
say "  tandem on node a exited with status $status"
RESULT[tandem.c.exit]=$status

say "tandem: stopping node b"
kill -TERM "$TANDEM_B"
wait "$TANDEM_B" 2>/dev/null || true
lab_wait 5 "the VIP is gone from both nodes" test "$(lab_vip_owner)" = none

# ---------------------------------------------------------------- keepalived + HAProxy
# HAProxy binds the VIP before it holds it, as tandem does with IP_FREEBIND (per-namespace sysctl).
ip netns exec "$LAB_A" sysctl -q -w net.ipv4.ip_nonlocal_bind=1
ip netns exec "$LAB_B" sysctl -q -w net.ipv4.ip_nonlocal_bind=1

write_pair_configs() {
  local n=$1 priority=$2 address=$3
  cat >"$LAB_DIR/haproxy-$n.cfg" <<EOF
global
    maxconn 4000
    nbthread 1
defaults
    mode http
    retries 1
    timeout connect 500ms
    timeout client 30s
    timeout server 5s
    timeout http-request 5s
frontend web
    bind $LAB_VIP:80
    default_backend web_pool
backend web_pool
    balance roundrobin
    option httpchk GET /health
    server s1 198.51.100.21:8080 check inter 500ms rise 2 fall 2
    server s2 198.51.100.22:8080 check inter 500ms rise 2 fall 2
EOF
  cat >"$LAB_DIR/chk-haproxy-$n.sh" <<EOF
#!/bin/sh
# Is this node's haproxy alive? (its pid from its own pid file; a zombie counts as dead)
pid=\$(cat "$LAB_DIR/haproxy-$n.pid" 2>/dev/null) || exit 1
state=\$(cut -d' ' -f3 "/proc/\$pid/stat" 2>/dev/null) || exit 1
[ -n "\$state" ] && [ "\$state" != Z ]
EOF
  chmod 755 "$LAB_DIR/chk-haproxy-$n.sh"
  cat >"$LAB_DIR/keepalived-$n.conf" <<EOF
global_defs {
    router_id lb-$n
    vrrp_version 3
    script_user root
}
vrrp_script chk_haproxy {
    script "$LAB_DIR/chk-haproxy-$n.sh"
    interval 1
    fall 1
    rise 1
    weight -60
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority $priority
    advert_int 0.05
    mcast_src_ip $address
    virtual_ipaddress {
        $LAB_VIP/24 dev eth0
    }
    track_script {
        chk_haproxy
    }
}
EOF
}

start_haproxy() {
  local n=$1 ns=$2
  rm -f "$LAB_DIR/haproxy-$n.pid"
  ip netns exec "$ns" haproxy -D -p "$LAB_DIR/haproxy-$n.pid" -f "$LAB_DIR/haproxy-$n.cfg" \
    >>"$LAB_DIR/haproxy-$n.log" 2>&1 || die "haproxy on node $n failed: $(cat "$LAB_DIR/haproxy-$n.log")"
  lab_wait 5 "haproxy on node $n writes its pid" test -s "$LAB_DIR/haproxy-$n.pid"
  LAB_PIDS+=("$(cat "$LAB_DIR/haproxy-$n.pid")")
}
start_keepalived() {
  local n=$1 ns=$2
  rm -f "$LAB_DIR/keepalived-$n.pid" "$LAB_DIR/vrrp-$n.pid"
  lab_spawn "$ns" "$LAB_DIR/keepalived-$n.log" keepalived -n -l -D -P -f "$LAB_DIR/keepalived-$n.conf" \
    -p "$LAB_DIR/keepalived-$n.pid" -r "$LAB_DIR/vrrp-$n.pid" -c "$LAB_DIR/checkers-$n.pid"
  eval "KEEPALIVED_$n=$LAB_LAST_PID"
  lab_wait 5 "keepalived's VRRP process on node $n" test -s "$LAB_DIR/vrrp-$n.pid"
}
kill_haproxy_a() { kill -KILL "$(cat "$LAB_DIR/haproxy-a.pid")"; }
kill_all_a() {
  # The VRRP child first: killed alone, the parent would stop it cleanly (that's not a crash).
  kill -KILL "$(cat "$LAB_DIR/vrrp-a.pid")" "$KEEPALIVED_a" "$(cat "$LAB_DIR/haproxy-a.pid")"
  wait "$KEEPALIVED_a" 2>/dev/null || true
}
term_keepalived_a() { kill -TERM "$KEEPALIVED_a"; }

write_pair_configs a 150 198.51.100.11
write_pair_configs b 100 198.51.100.12
say "keepalived + HAProxy: starting node a and node b"
start_haproxy a "$LAB_A"
start_haproxy b "$LAB_B"
start_keepalived a "$LAB_A"
start_keepalived b "$LAB_B"
lab_wait_master a

say "keepalived + HAProxy (a): link down"
measure pair.a link down
link up
lab_wait_master a

say "keepalived + HAProxy (b): kill -9 haproxy"
measure pair.b kill_haproxy_a
start_haproxy a "$LAB_A"
lab_wait_master a

say "keepalived + HAProxy (b2): kill -9 keepalived and haproxy"
measure pair.b2 kill_all_a
start_haproxy a "$LAB_A"
start_keepalived a "$LAB_A"
lab_wait_master a

say "keepalived + HAProxy (c): SIGTERM keepalived"
measure pair.c term_keepalived_a
status=0
wait "$KEEPALIVED_a" 2>/dev/null || status=$?
say "  keepalived on node a exited with status $status"

# ---------------------------------------------------------------- table
echo
echo "Failover, client opening a new connection every 5 ms ($((DURATION * 200)) attempts per cell); gap = longest time"
echo "without a successful response; failed = attempts without a 200 within 1 s; VIP off a = left node a's eth0 within 3 s"
echo
fmt='| %-38s | %-17s | %-16s | %-21s | %-20s |\n'
# shellcheck disable=SC2059
{
  printf "$fmt" "scenario" "tandem gap/failed" "tandem VIP off a" "ka+HAProxy gap/failed" "ka+HAProxy VIP off a"
  printf "$fmt" "$(printf '%.0s-' {1..38})" "$(printf '%.0s-' {1..17})" "$(printf '%.0s-' {1..16})" "$(printf '%.0s-' {1..21})" "$(printf '%.0s-' {1..20})"
  printf "$fmt" "(a) master's link down" "${RESULT[tandem.a]}" "${RESULT[tandem.a.vip]}" "${RESULT[pair.a]}" "${RESULT[pair.a.vip]}"
  printf "$fmt" "(b) proxy kill -9 (ka: haproxy only)" "${RESULT[tandem.b]}" "${RESULT[tandem.b.vip]}" "${RESULT[pair.b]}" "${RESULT[pair.b.vip]}"
  printf "$fmt" "(b2) everything kill -9 (tandem = b)" "${RESULT[tandem.b]}" "${RESULT[tandem.b.vip]}" "${RESULT[pair.b2]}" "${RESULT[pair.b2.vip]}"
  printf "$fmt" "(c) planned: SIGTERM (ka: keepalived)" "${RESULT[tandem.c]}" "${RESULT[tandem.c.vip]}" "${RESULT[pair.c]}" "${RESULT[pair.c.vip]}"
}
echo
echo "tandem on SIGTERM exited with status ${RESULT[tandem.c.exit]}. keepalived tracks haproxy with a 1 s vrrp_script (fall 1, weight -60)."
