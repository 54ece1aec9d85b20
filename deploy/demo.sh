#!/usr/bin/env bash
# A one-minute tour of tandem on a throwaway network made of namespaces (run as root):
#
#   sudo deploy/demo.sh        (or: bash deploy/demo.sh, as root)
#
# Builds tandem, starts two nodes (config/demo-node-a.yaml, priority 150, and -b.yaml, 100) in front
# of two HTTP backends, shows the VIP 198.51.100.10 answering, then kills the master with kill -9
# while a client opens a new connection every 5 ms, and prints how long the service was gone.
# Then it restarts node a, which takes the VIP back. Everything it creates (namespaces, veths,
# processes, a temp directory) is removed on exit, also on Ctrl-C or failure; nothing touches the
# root namespace. TANDEM_BIN=path skips the build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lab.sh
. "$root/deploy/lab.sh"

lab_require_root
trap lab_down EXIT
trap 'exit 130' INT TERM
lab_build_tandem "$root"

say "building a lab of network namespaces ($LAB_PREFIX-*): nodes a .11 and b .12, client .100, backends s1 .21 and s2 .22 on 198.51.100.0/24"
lab_up
lab_start_backends

start_node() {
  lab_spawn "$LAB_A" "$LAB_DIR/node-a.log" "$TANDEM_BIN" run --config "$root/config/demo-node-a.yaml"
  NODE_A_PID=$LAB_LAST_PID
}
say "starting tandem on node a (priority 150) and node b (priority 100); VRRP v3, adverts every 50 ms"
start_node
lab_spawn "$LAB_B" "$LAB_DIR/node-b.log" "$TANDEM_BIN" run --config "$root/config/demo-node-b.yaml"
lab_wait_master a
say "node a holds the VIP:  $(lab_vip_line "$LAB_A")"
say "node b holds it:       $(lab_holds_vip "$LAB_B" && echo yes || echo no)"

echo
say "the client asks http://$LAB_VIP/ four times (each backend answers with its name and the proxy node that called it):"
for _ in 1 2 3 4; do
  printf '           %s\n' "$(lab_curl_vip)"
done

echo
say "a client now opens a new connection every 5 ms; in 1 s node a gets kill -9"
lab_client_start 3 "$LAB_DIR/kill.out"
kill -KILL "$NODE_A_PID"
wait "$NODE_A_PID" 2>/dev/null || true
say "node a killed"
gone=$(lab_vip_gone_within "$LAB_A" 3)
lab_client_wait "$LAB_DIR/kill.out"
lab_client_read "$LAB_DIR/kill.out"
say "client: $CLIENT_ATTEMPTS connections, $CLIENT_OK answered, $CLIENT_FAILED failed (refused, reset, or no answer within 1 s: $CLIENT_KINDS)"
say "failover gap (longest time without an answer): $CLIENT_GAP_MS ms"
if [ "$gone" = no ]; then
  say "WARNING: node a still has the VIP 3 s after the kill"
else
  say "the dead node's VIP expired from its interface after $gone (a kernel lifetime tandem kept refreshing)"
fi
say "node b holds the VIP now: $(lab_vip_line "$LAB_B")"
say "answer through the VIP: $(lab_curl_vip)"

echo
say "restarting tandem on node a while the client runs again: a outranks b and takes the VIP back (preempt)"
lab_client_start 2 "$LAB_DIR/back.out" 0.5
start_node
lab_wait_master a
lab_client_wait "$LAB_DIR/back.out"
lab_client_read "$LAB_DIR/back.out"
say "client: $CLIENT_ATTEMPTS connections, $CLIENT_FAILED failed while the VIP moved back (longest gap $CLIENT_GAP_MS ms)"
say "node a holds the VIP again: $(lab_vip_line "$LAB_A"); node b: $(lab_holds_vip "$LAB_B" && echo still holds it || echo released it)"
say "answer through the VIP: $(lab_curl_vip)"

echo
say "done; removing the lab"
