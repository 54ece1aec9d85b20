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
# (d)-(f) run tandem on benches/track-node-{a,b}.yaml: the demo configs plus
# `track: - backend: web_pool, weight: -100` (150 - 100 = 50 < node b's 100). keepalived keeps
# the usual vrrp_script on haproxy's pid.
#   (d) backends lost by the master only: unreachable routes to s1 and s2 in node a's namespace.
#       Measured like (a)-(c); tandem's gap is held against fall x interval + 250 ms.
#   (e) 20 reloads under load: wrk (4 connections, keep-alive) for 11 s against the VIP while the
#       master reloads every 400 ms: SIGHUP to tandem, `haproxy -sf <old pid>` for the pair.
#       Reported: wrk's non-2xx responses and socket errors, and whether the VIP moved.
#   (e2) tandem only: one SIGHUP with an invalid file (priority 300) under 3 s of wrk; it must log
#       "reload failed" and keep serving.
#   (f) data plane saturated for 30 s: wrk (2 threads, 64 connections) pinned with the master's
#       proxy and VRRP (tandem; haproxy and keepalived's VRRP process) to CPU 0, the backends to
#       CPU 1. Reported: VRRP state changes logged by either node, and whether node b ever held
#       the VIP (sampled every 100 ms).
# (e), (e2) and (f) need wrk (apt-get install wrk) and are skipped without it.
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
HAVE_WRK=1
command -v wrk >/dev/null || { HAVE_WRK=0; printf 'note: wrk not installed (apt-get install wrk): rows (e), (e2), (f) skipped\n' >&2; }
command -v taskset >/dev/null || die "taskset not found (util-linux)"
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

# (d): the backends become unreachable from node a only (routes inside its namespace).
backends_unreachable() {
  ip -n "$LAB_A" route add unreachable 198.51.100.21/32
  ip -n "$LAB_A" route add unreachable 198.51.100.22/32
}
backends_reachable() {
  ip -n "$LAB_A" route del unreachable 198.51.100.21/32
  ip -n "$LAB_A" route del unreachable 198.51.100.22/32
}
HC_FALL=2 HC_INTERVAL_MS=500   # health_check in config/demo-node-a.yaml and benches/track-node-a.yaml
BOUND_MS=$((HC_FALL * HC_INTERVAL_MS + 250))

VRRP_CHANGE_TANDEM='VRRP state changed'
VRRP_CHANGE_KA='Entering (BACKUP|MASTER|FAULT) STATE'

# reload_under_load KEY SECONDS COUNT RELOAD...: wrk for SECONDS, RELOAD COUNT times every 400 ms
# (from 0.5 s in); records "non-2xx, socket errors" and whether the VIP left node a.
reload_under_load() {
  local key=$1 seconds=$2 count=$3 i
  shift 3
  local out="$LAB_DIR/$key.wrk"
  lab_vip_watch_start "$seconds" "$LAB_DIR/$key.owners"
  lab_wrk_start "$seconds" 4 1 "$out"
  sleep 0.5
  for ((i = 0; i < count; i++)); do
    "$@"
    sleep 0.4
  done
  lab_wrk_wait "$out"
  wait "$LAB_WATCH_PID" || true
  lab_wrk_read "$out"
  RESULT[$key]="$WRK_NON2XX non-2xx, $WRK_SOCKET socket"
  RESULT[$key.vip]=$(grep -qxv a "$LAB_DIR/$key.owners" && echo "VIP moved: yes" || echo "VIP moved: no")
  say "  wrk: $WRK_REQUESTS requests ($WRK_RPS/s), $WRK_NON2XX non-2xx, socket errors: $WRK_SOCKET_KINDS; VIP owners seen: $(paste -sd, "$LAB_DIR/$key.owners"); client TIME-WAIT sockets: $(lab_client_timewait)"
}

# saturate KEY LOG_A LOG_B REGEX PIN_PID...: wrk with 64 connections for 30 s, wrk and PIN_PIDs on
# CPU 0 (the backends on CPU 1); counts REGEX lines added to both logs, watches the VIP.
SATURATE_S=30
saturate() {
  local key=$1 log_a=$2 log_b=$3 regex=$4 pid
  shift 4
  local out="$LAB_DIR/$key.wrk" before_a before_b after_a after_b ticks0 ticks1
  for pid in "$@"; do taskset -a -p -c 0 "$pid" >/dev/null; done
  taskset -a -p -c 1 "$LAB_S1_PID" >/dev/null
  taskset -a -p -c 1 "$LAB_S2_PID" >/dev/null
  before_a=$(lab_count "$log_a" "$regex")
  before_b=$(lab_count "$log_b" "$regex")
  ticks0=$(lab_cpu_ticks "$1")
  local cpu0_before cpu0_after
  cpu0_before=$(lab_cpu_busy_ticks 0)
  lab_vip_watch_start "$SATURATE_S" "$LAB_DIR/$key.owners"
  lab_wrk_start "$SATURATE_S" 64 2 "$out" 0
  lab_wrk_wait "$out"
  wait "$LAB_WATCH_PID" || true
  ticks1=$(lab_cpu_ticks "$1")
  cpu0_after=$(lab_cpu_busy_ticks 0)
  after_a=$(lab_count "$log_a" "$regex")
  after_b=$(lab_count "$log_b" "$regex")
  taskset -a -p -c 0,1 "$LAB_S1_PID" >/dev/null
  taskset -a -p -c 0,1 "$LAB_S2_PID" >/dev/null
  lab_wrk_read "$out"
  local changes=$(((after_a - before_a) + (after_b - before_b)))
  RESULT[$key]="$changes state changes"
  RESULT[$key.vip]=$(grep -qxE 'b|both' "$LAB_DIR/$key.owners" && echo "backup claimed: yes" || echo "backup claimed: no")
  local cpu
  cpu=$(awk -v t=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" -v s="$SATURATE_S" 'BEGIN { printf "%.0f", 100 * t / hz / s }')
  local cpu0
  cpu0=$(awk -v b="$cpu0_before" -v a="$cpu0_after" 'BEGIN { split(b, x, " "); split(a, y, " "); printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]) }')
  RESULT[$key.note]="$WRK_RPS req/s, $WRK_NON2XX non-2xx, $WRK_SOCKET socket errors; master proxy (pid $1) at $cpu% of a core, CPU 0 $cpu0% busy"
  say "  wrk: $WRK_REQUESTS requests ($WRK_RPS/s), $WRK_NON2XX non-2xx, socket errors: $WRK_SOCKET_KINDS; pid $1 used $cpu% of a core, CPU 0 $cpu0% busy; client TIME-WAIT sockets: $(lab_client_timewait)"
  say "  state changes: node a $((after_a - before_a)), node b $((after_b - before_b)); VIP owners seen: $(paste -sd, "$LAB_DIR/$key.owners")"
  if [ "$changes" -gt 0 ]; then
    { grep -hE "$regex" "$log_a" "$log_b" || true; } | tail -n "$changes" | sed 's/^/    /'
  fi
}
skip_wrk_rows() {
  local key
  for key in "$@"; do
    RESULT[$key]="skipped: no wrk"
    RESULT[$key.vip]="(apt-get install wrk)"
  done
}

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

# ---------------------------------------------------------------- tandem (d)-(f), backend tracked
# Node a runs a copy of its file, so that (e2) can break it for one reload.
cp "$root/benches/track-node-a.yaml" "$LAB_DIR/track-node-a.yaml"
start_tandem_track_a() {
  lab_spawn "$LAB_A" "$LAB_DIR/tandem-track-a.log" "$TANDEM_BIN" run --config "$LAB_DIR/track-node-a.yaml"
  TANDEM_A=$LAB_LAST_PID
}
hup_tandem_a() { kill -HUP "$TANDEM_A"; }
say "tandem: starting node a and node b on benches/track-node-{a,b}.yaml (backend tracked, weight -100)"
start_tandem_track_a
lab_spawn "$LAB_B" "$LAB_DIR/tandem-track-b.log" "$TANDEM_BIN" run --config "$root/benches/track-node-b.yaml"
TANDEM_B=$LAB_LAST_PID
lab_wait_master a

say "tandem (d): backends unreachable from node a only"
measure tandem.d backends_unreachable
gap=${RESULT[tandem.d]%% ms*}
RESULT[tandem.d.bound]=$([ "$gap" -le "$BOUND_MS" ] && echo "within" || echo "OVER")
say "  gap $gap ms vs the bound fall x interval + 250 ms = $BOUND_MS ms: ${RESULT[tandem.d.bound]}"
backends_reachable
lab_wait_master a

if [ "$HAVE_WRK" = 1 ]; then
  say "tandem (e): 20 SIGHUP reloads of node a under wrk"
  reloads0=$(lab_count "$LAB_DIR/tandem-track-a.log" 'config reloaded')
  changes0=$(lab_count "$LAB_DIR/tandem-track-a.log" "$VRRP_CHANGE_TANDEM")
  reload_under_load tandem.e 11 20 hup_tandem_a
  sleep 0.2
  reloads=$(($(lab_count "$LAB_DIR/tandem-track-a.log" 'config reloaded') - reloads0))
  changes=$(($(lab_count "$LAB_DIR/tandem-track-a.log" "$VRRP_CHANGE_TANDEM") - changes0))
  RESULT[tandem.e.note]="$reloads of 20 'config reloaded' logged, $changes VRRP state changes on node a"
  say "  ${RESULT[tandem.e.note]}"

  say "tandem (e2): one SIGHUP with an invalid file (priority 300) under wrk"
  failed0=$(lab_count "$LAB_DIR/tandem-track-a.log" 'reload failed')
  sed -i 's/^      priority: 150$/      priority: 300/' "$LAB_DIR/track-node-a.yaml"
  grep -q 'priority: 300' "$LAB_DIR/track-node-a.yaml" || die "could not break the copy of track-node-a.yaml"
  reload_under_load tandem.e2 3 1 hup_tandem_a
  cp "$root/benches/track-node-a.yaml" "$LAB_DIR/track-node-a.yaml"
  failed=$(($(lab_count "$LAB_DIR/tandem-track-a.log" 'reload failed') - failed0))
  alive=$(kill -0 "$TANDEM_A" 2>/dev/null && echo running || echo "NOT running")
  RESULT[tandem.e2.vip]="reload failed logged: $([ "$failed" -ge 1 ] && echo yes || echo NO)"
  say "  'reload failed' lines: $failed; tandem on node a: $alive; the log says:"
  { grep -A2 'reload failed' "$LAB_DIR/tandem-track-a.log" || true; } | tail -n 3 | sed 's/^/    /'
  lab_wait_master a

  say "tandem (f): node a's proxy saturated for ${SATURATE_S} s (wrk and tandem on CPU 0)"
  saturate tandem.f "$LAB_DIR/tandem-track-a.log" "$LAB_DIR/tandem-track-b.log" "$VRRP_CHANGE_TANDEM" "$TANDEM_A"
else
  skip_wrk_rows tandem.e tandem.e2 tandem.f
fi

say "tandem: stopping both nodes"
kill -TERM "$TANDEM_A" "$TANDEM_B"
wait "$TANDEM_A" 2>/dev/null || true
wait "$TANDEM_B" 2>/dev/null || true
lab_wait 10 "the VIP is gone from both nodes" test "$(lab_vip_owner)" = none

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
# A reload the usual way without master-worker mode: a new haproxy that tells the old one to
# finish its connections and leave (-sf). The pid file then holds the new one's pid.
reload_haproxy_a() {
  local old
  old=$(cat "$LAB_DIR/haproxy-a.pid")
  ip netns exec "$LAB_A" haproxy -D -p "$LAB_DIR/haproxy-a.pid" -f "$LAB_DIR/haproxy-a.cfg" -sf "$old" \
    >>"$LAB_DIR/haproxy-a.log" 2>&1 || die "haproxy reload on node a failed: $(tail -n 5 "$LAB_DIR/haproxy-a.log")"
  LAB_PIDS+=("$(cat "$LAB_DIR/haproxy-a.pid")")
}

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

say "keepalived + HAProxy: restarting keepalived on node a"
start_keepalived a "$LAB_A"
lab_wait_master a

say "keepalived + HAProxy (d): backends unreachable from node a only"
measure pair.d backends_unreachable
backends_reachable
lab_wait_master a

if [ "$HAVE_WRK" = 1 ]; then
  say "keepalived + HAProxy (e): 20 haproxy -sf reloads on node a under wrk"
  changes0=$(lab_count "$LAB_DIR/keepalived-a.log" "$VRRP_CHANGE_KA")
  reload_under_load pair.e 11 20 reload_haproxy_a
  changes=$(($(lab_count "$LAB_DIR/keepalived-a.log" "$VRRP_CHANGE_KA") - changes0))
  RESULT[pair.e.note]="$changes keepalived state changes on node a"
  say "  ${RESULT[pair.e.note]}"
  lab_wait_master a

  say "keepalived + HAProxy (f): node a's haproxy saturated for ${SATURATE_S} s (wrk, haproxy, keepalived's VRRP on CPU 0)"
  saturate pair.f "$LAB_DIR/keepalived-a.log" "$LAB_DIR/keepalived-b.log" "$VRRP_CHANGE_KA" \
    "$(cat "$LAB_DIR/haproxy-a.pid")" "$(cat "$LAB_DIR/vrrp-a.pid")"
else
  skip_wrk_rows pair.e pair.f
fi
RESULT[pair.e2]="n/a"
RESULT[pair.e2.vip]="n/a"

# ---------------------------------------------------------------- table
echo
echo "Failover, client opening a new connection every 5 ms ($((DURATION * 200)) attempts per cell); gap = longest time"
echo "without a successful response; failed = attempts without a 200 within 1 s; VIP off a = left node a's eth0 within 3 s"
echo
fmt='| %-42s | %-22s | %-26s | %-22s | %-22s |\n'
# shellcheck disable=SC2059
{
  printf "$fmt" "scenario" "tandem gap/failed" "tandem VIP off a" "ka+HAProxy gap/failed" "ka+HAProxy VIP off a"
  printf "$fmt" "$(printf '%.0s-' {1..42})" "$(printf '%.0s-' {1..22})" "$(printf '%.0s-' {1..26})" "$(printf '%.0s-' {1..22})" "$(printf '%.0s-' {1..22})"
  printf "$fmt" "(a) master's link down" "${RESULT[tandem.a]}" "${RESULT[tandem.a.vip]}" "${RESULT[pair.a]}" "${RESULT[pair.a.vip]}"
  printf "$fmt" "(b) proxy kill -9 (ka: haproxy only)" "${RESULT[tandem.b]}" "${RESULT[tandem.b.vip]}" "${RESULT[pair.b]}" "${RESULT[pair.b.vip]}"
  printf "$fmt" "(b2) everything kill -9 (tandem = b)" "${RESULT[tandem.b]}" "${RESULT[tandem.b.vip]}" "${RESULT[pair.b2]}" "${RESULT[pair.b2.vip]}"
  printf "$fmt" "(c) planned: SIGTERM (ka: keepalived)" "${RESULT[tandem.c]}" "${RESULT[tandem.c.vip]}" "${RESULT[pair.c]}" "${RESULT[pair.c.vip]}"
  printf "$fmt" "(d) master loses both backends, b fine" "${RESULT[tandem.d]}" "${RESULT[tandem.d.vip]}" "${RESULT[pair.d]}" "${RESULT[pair.d.vip]}"
  printf "$fmt" "(e) 20 reloads under wrk, 11 s (errors)" "${RESULT[tandem.e]}" "${RESULT[tandem.e.vip]}" "${RESULT[pair.e]}" "${RESULT[pair.e.vip]}"
  printf "$fmt" "(e2) 1 reload, invalid file (errors)" "${RESULT[tandem.e2]}" "${RESULT[tandem.e2.vip]}" "${RESULT[pair.e2]}" "${RESULT[pair.e2.vip]}"
  printf "$fmt" "(f) master saturated ${SATURATE_S} s (VRRP changes)" "${RESULT[tandem.f]}" "${RESULT[tandem.f.vip]}" "${RESULT[pair.f]}" "${RESULT[pair.f.vip]}"
}
echo
echo "tandem on SIGTERM exited with status ${RESULT[tandem.c.exit]}. keepalived tracks haproxy with a 1 s vrrp_script (fall 1, weight -60)."
echo "(d) tandem tracks backend web_pool (weight -100): gap ${RESULT[tandem.d]%% ms*} ms vs fall x interval + 250 ms = $BOUND_MS ms: ${RESULT[tandem.d.bound]}."
if [ "$HAVE_WRK" = 1 ]; then
  echo "(e)/(e2) cells: wrk's non-2xx responses, socket errors (connect+read+write+timeout); VIP sampled every 100 ms."
  echo "    tandem: ${RESULT[tandem.e.note]}. keepalived: ${RESULT[pair.e.note]}."
  echo "(f) cells: VRRP state changes logged by either node during the 30 s; whether node b ever held the VIP."
  echo "    tandem: ${RESULT[tandem.f.note]}"
  echo "    ka+HAProxy: ${RESULT[pair.f.note]}"
else
  echo "(e), (e2), (f) skipped: wrk not installed (apt-get install wrk)."
fi
