#!/usr/bin/env bash
# A tour of tandem scaled out past a pair (run as root; needs FRR: apt-get install frr):
#
#   bash deploy/demo-scale-out.sh
#
# Builds a lab of network namespaces: a router running FRR, three nodes each running FRR (zebra,
# bgpd, bfdd; deploy/frr/node.conf) and tandem (config/scale-out-node.yaml), a client behind the
# router and two HTTP backends. Every node announces the VIP 203.0.113.10 over BGP while it can
# serve, and the router spreads new connections over the three (ECMP). Then, while a client opens
# a new connection every 5 ms: node a's link goes down (its switch port), node b's tandem gets
# kill -9, node c's tandem gets SIGTERM (a planned drain). It ends with one line:
#
#   scale-out: nodes=3 spread=a:N,b:N,c:N link-down-gap-ms=X kill9-gap-ms=Y drain-failed=Z
#
# spread: who answered 3,000 new connections; the gaps: the longest time without a successful
# answer; drain-failed: failed requests across the SIGTERM. It exits non-zero unless each node
# got 20%..47% of the connections, the link-down gap is at most 300 ms, the killed node's route
# went within 3 s (and the kill -9 gap is at most that), and the drain failed nothing.
# Everything it creates (namespaces, processes, a temp directory) is removed on exit, also on
# Ctrl-C or failure; nothing touches the root namespace. TANDEM_BIN=path skips the build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lab.sh
. "$root/deploy/lab.sh"
# shellcheck source=deploy/lab-bgp.sh
. "$root/deploy/lab-bgp.sh"

lab_require_root
for daemon in zebra bgpd bfdd; do
  [ -x "/usr/lib/frr/$daemon" ] || die "/usr/lib/frr/$daemon not found: apt-get install frr"
done
trap lab_down EXIT
trap 'exit 130' INT TERM
lab_build_tandem "$root"

say "building a lab of network namespaces ($LAB_PREFIX-*): router 198.51.100.1 (AS 64496), nodes a .11, b .12, c .13 (AS 64500), client 192.0.2.100, backends 192.0.2.141 and .142"
bgp_lab_up
bgp_start_backends
say "starting FRR (zebra, bfdd, bgpd) on the router and the nodes; BFD 50 ms x 3 on every session"
bgp_frr_up
say "starting tandem on the nodes: each announces $BGP_VIP once its backends pass their health checks"
for node in "${BGP_NODES[@]}"; do bgp_node_start "$node"; done
bgp_wait_paths "a b c" 30
bgp_wait_bfd 30
say "the router's route to $BGP_VIP, one next hop per node:"
bgp_route_lines
say "node a's view (tandem status):"
bgp_announce_status a

echo
say "3,000 new connections from the client (kernel-chosen ports; the router hashes each 5-tuple):"
spread=$(bgp_spread 3000 32 "$LAB_DIR/spread.out")
say "answered by node $spread (failures: $(sed -n 's/^failures by kind: //p' "$LAB_DIR/spread.out.err"))"

# Reports one disruption from the client's results; $1 names it, $2 is the router's reaction.
report() {
  local failed="none failed"
  [ "$CLIENT_FAILED" = 0 ] || failed="$CLIENT_FAILED failed ($CLIENT_KINDS) within $CLIENT_WINDOW_MS ms"
  say "client: $CLIENT_ATTEMPTS connections, $failed; answers by node $CLIENT_BY_NODE"
  say "$1: longest time without an answer $CLIENT_GAP_MS ms; $2"
}

echo
say "a client opens a new connection every 5 ms; in 1 s node a's switch port goes down"
bgp_client_start 3 "$LAB_DIR/link.out"
ip -n "$BGP_SW" link set pa down
link_gone=$(bgp_path_gone_ms a 3)
bgp_client_wait "$LAB_DIR/link.out"
link_gap=$CLIENT_GAP_MS
report "link down" "the router dropped node a after $link_gone ms (BFD)"
say "node a's port up again: BFD and BGP come back, and so does its path"
ip -n "$BGP_SW" link set pa up
bgp_wait_paths "a b c" 20

echo
say "the client again; in 1 s node b's tandem gets kill -9"
bgp_client_start 3 "$LAB_DIR/kill.out"
# (stderr off: bash would report the killed job as "Killed")
{
  kill -KILL "${BGP_NODE_PID[b]}"
  kill_gone=$(bgp_path_gone_ms b 3)
  wait "${BGP_NODE_PID[b]}" || true
} 2>/dev/null
bgp_client_wait "$LAB_DIR/kill.out"
kill_gap=$CLIENT_GAP_MS
report "kill -9" "the router dropped node b after $kill_gone ms (the kernel deleted tandem's TUN device with the process, and FRR withdrew)"
say "restarting tandem on node b: it announces again once its backends are up"
bgp_node_start b
bgp_wait_paths "a b c" 20
bgp_route_lines

echo
say "the client again, for 5 s; in 1 s node c's tandem gets SIGTERM (withdraw, wait until no new client comes, drain, exit)"
bgp_client_start 5 "$LAB_DIR/drain.out"
drain_start_ns=$(date +%s%N)
kill -TERM "${BGP_NODE_PID[c]}"
drain_gone=$(bgp_path_gone_ms c 3)
# withdraw.quiet (1 s) after the last new client, then node.shutdown_timeout (5 s) at most.
lab_wait 20 "node c's tandem exits after SIGTERM" bgp_node_exited c
drain_exit=0
wait "${BGP_NODE_PID[c]}" || drain_exit=$?
bgp_client_wait "$LAB_DIR/drain.out"
drain_failed=$CLIENT_FAILED
drain_moved=0
[ "$drain_gone" = no ] ||
  drain_moved=$(bgp_resets_at_switch $((drain_start_ns + drain_gone * 1000000)) "$LAB_DIR/drain.out")
report "SIGTERM" "the router dropped node c after $drain_gone ms; tandem exited with status $drain_exit"
[ "$drain_moved" = 0 ] ||
  say "SIGTERM: $drain_moved of the failures reset as the router switched paths (ECMP rehash; see the README)"
say "node c's log:"
bgp_announce_log c
bgp_route_lines

echo
failures=()
for count in $(tr ',' '\n' <<<"$spread" | cut -d: -f2); do
  # 20%..47% of 3,000.
  [ "$count" -ge 600 ] && [ "$count" -le 1410 ] || failures+=("a node got $count of 3,000 connections (bounds 600..1410)")
done
[ "$link_gap" -le 300 ] || failures+=("link-down gap $link_gap ms (bound 300)")
[ "$kill_gone" != no ] || failures+=("node b's route stayed more than 3 s after kill -9")
[ "$kill_gap" -le 3000 ] || failures+=("kill -9 gap $kill_gap ms (bound 3000, the lease)")
[ "$drain_gone" != no ] || failures+=("node c's route stayed more than 3 s after SIGTERM")
[ "$((drain_failed - drain_moved))" = 0 ] ||
  failures+=("$((drain_failed - drain_moved)) requests failed across the SIGTERM, apart from resets at the router's switch")
[ "$drain_exit" = 0 ] || failures+=("tandem on node c exited with status $drain_exit after SIGTERM")
for failure in "${failures[@]}"; do printf 'bound not met: %s\n' "$failure" >&2; done
[ ${#failures[@]} = 0 ] || LAB_FAILED=1
say "done; removing the lab"
lab_down
echo "scale-out: nodes=3 spread=$spread link-down-gap-ms=$link_gap kill9-gap-ms=$kill_gap drain-failed=$drain_failed"
[ ${#failures[@]} = 0 ]
