# shellcheck shell=bash
# Helpers for deploy/demo-scale-out.sh: the scale-out lab of network namespaces, where three
# tandem nodes announce one VIP over BGP to a router running FRR, which spreads flows over them
# (ECMP). Sourced after deploy/lab.sh, whose generic helpers it uses (lab_add_ns, lab_spawn,
# lab_wait, lab_down, the python backend), by a script that sets $root (the source tree) and
# $TANDEM_BIN. Nothing here touches the root namespace.
#
#   switch br0, 198.51.100.0/24: router .1, nodes a .11, b .12, c .13 (AS 64500; router 64496)
#   client 192.0.2.100/25 <-> router 192.0.2.1/25 (a direct veth)
#   switch br1, 192.0.2.128/25:  router .129, backends s1 .141 and s2 .142 (HTTP on :8080)
#   VIP 203.0.113.10, announced by every node that can serve it.

BGP_VIP=203.0.113.10
BGP_SW="$LAB_PREFIX-sw"
BGP_ROUTER="$LAB_PREFIX-r"
BGP_CLIENT="$LAB_PREFIX-cl"
BGP_S1="$LAB_PREFIX-s1"
BGP_S2="$LAB_PREFIX-s2"
BGP_NODES=(a b c)
declare -A BGP_NODE_NS=([a]="$LAB_PREFIX-a" [b]="$LAB_PREFIX-b" [c]="$LAB_PREFIX-c")
declare -A BGP_NODE_IP=([a]=198.51.100.11 [b]=198.51.100.12 [c]=198.51.100.13)
declare -A BGP_NODE_PID=()   # tandem's process id per node

# Host namespace $1 with address $2 (with its prefix) on bridge $3 of the switch, port $4,
# default route via $5.
bgp_add_host() {
  local ns=$1 address=$2 bridge=$3 port=$4 gateway=$5
  lab_add_ns "$ns"
  ip -n "$BGP_SW" link add "$port" type veth peer name eth0 netns "$ns"
  ip -n "$BGP_SW" link set "$port" master "$bridge" up
  ip -n "$ns" addr add "$address" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$gateway"
}

bgp_lab_up() {
  LAB_DIR=$(mktemp -d /tmp/tandem-lab.XXXXXX)
  # FRR's daemons run as user frr and keep their sockets in directories below this one.
  chmod 755 "$LAB_DIR"
  lab_add_ns "$BGP_SW"
  local bridge
  for bridge in br0 br1; do
    ip -n "$BGP_SW" link add "$bridge" type bridge
    ip -n "$BGP_SW" link set "$bridge" up
  done

  lab_add_ns "$BGP_ROUTER"
  ip -n "$BGP_SW" link add pr type veth peer name eth0 netns "$BGP_ROUTER"
  ip -n "$BGP_SW" link add pr1 type veth peer name eth1 netns "$BGP_ROUTER"
  ip -n "$BGP_SW" link set pr master br0 up
  ip -n "$BGP_SW" link set pr1 master br1 up
  ip -n "$BGP_ROUTER" addr add 198.51.100.1/24 dev eth0
  ip -n "$BGP_ROUTER" addr add 192.0.2.129/25 dev eth1
  lab_add_ns "$BGP_CLIENT"
  ip -n "$BGP_ROUTER" link add eth2 type veth peer name eth0 netns "$BGP_CLIENT"
  ip -n "$BGP_ROUTER" addr add 192.0.2.1/25 dev eth2
  local link
  for link in eth0 eth1 eth2; do ip -n "$BGP_ROUTER" link set "$link" up; done
  # Forward, and hash each flow by its 5-tuple: policy 1 picks a path at random per connection
  # over veth here; policy 3 with these fields (addresses, protocol, ports) is stable.
  ip netns exec "$BGP_ROUTER" sysctl -q -w net.ipv4.ip_forward=1 \
    net.ipv4.fib_multipath_hash_policy=3 net.ipv4.fib_multipath_hash_fields=0x37

  ip -n "$BGP_CLIENT" addr add 192.0.2.100/25 dev eth0
  ip -n "$BGP_CLIENT" link set eth0 up
  ip -n "$BGP_CLIENT" route add default via 192.0.2.1
  # Thousands of short connections to one address: more ports, TIME-WAIT reused (lab.sh's reason).
  ip netns exec "$BGP_CLIENT" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1

  local node
  for node in "${BGP_NODES[@]}"; do
    bgp_add_host "${BGP_NODE_NS[$node]}" "${BGP_NODE_IP[$node]}/24" br0 "p$node" 198.51.100.1
  done
  bgp_add_host "$BGP_S1" 192.0.2.141/25 br1 ps1 192.0.2.129
  bgp_add_host "$BGP_S2" 192.0.2.142/25 br1 ps2 192.0.2.129
  lab_write_python
  bgp_write_client
}

# FRR (zebra, bfdd, bgpd) in namespace $1 with config file $2, state in $LAB_DIR/frr-$3.
bgp_frr_start() {
  local ns=$1 config=$2 name=$3
  local dir="$LAB_DIR/frr-$name" daemon
  mkdir -p "$dir"
  chmod 777 "$dir"
  install -m 644 "$config" "$dir/frr.conf"
  for daemon in zebra bfdd bgpd; do
    local extra=()
    [ "$daemon" = bfdd ] && extra=(--bfdctl "$dir/bfdd.sock")
    lab_spawn "$ns" "$LAB_DIR/$name-$daemon.log" /usr/lib/frr/"$daemon" -P 0 -u frr -g frr \
      -i "$dir/$daemon.pid" -z "$dir/zserv.api" --vty_socket "$dir" -f "$dir/frr.conf" --log stdout "${extra[@]}"
    # bfdd and bgpd register with zebra through its API socket.
    if [ "$daemon" = zebra ]; then lab_wait 10 "zebra in $name starts" test -S "$dir/zserv.api"; fi
  done
}

bgp_frr_up() {
  bgp_frr_start "$BGP_ROUTER" "$root/deploy/frr/router.conf" router
  local node
  for node in "${BGP_NODES[@]}"; do
    # The node snippet is node a's; each node has its own address as router-id.
    sed -e "s/198\.51\.100\.11/${BGP_NODE_IP[$node]}/" -e "s/node-a/node-$node/" \
      "$root/deploy/frr/node.conf" >"$LAB_DIR/frr-$node.conf"
    bgp_frr_start "${BGP_NODE_NS[$node]}" "$LAB_DIR/frr-$node.conf" "$node"
  done
}

bgp_start_backends() {
  lab_spawn "$BGP_S1" "$LAB_DIR/s1.log" python3 "$LAB_DIR/backend.py" 192.0.2.141 8080 s1
  lab_spawn "$BGP_S2" "$LAB_DIR/s2.log" python3 "$LAB_DIR/backend.py" 192.0.2.142 8080 s2
  lab_wait 5 "backends listening" bgp_backends_up
}
bgp_backends_up() {
  ip netns exec "$BGP_ROUTER" curl -sf --max-time 1 -o /dev/null http://192.0.2.141:8080/health &&
    ip netns exec "$BGP_ROUTER" curl -sf --max-time 1 -o /dev/null http://192.0.2.142:8080/health
}

# Starts tandem on node $1 with config/scale-out-node.yaml under the node's name.
bgp_node_start() {
  local node=$1
  sed "s/^  name: node-a\$/  name: node-$node/" "$root/config/scale-out-node.yaml" >"$LAB_DIR/node-$node.yaml"
  lab_spawn "${BGP_NODE_NS[$node]}" "$LAB_DIR/node-$node.log" "$TANDEM_BIN" run --config "$LAB_DIR/node-$node.yaml"
  BGP_NODE_PID[$node]=$LAB_LAST_PID
}

# Node $1's own view: the ANNOUNCE block of `tandem status`, indented for the tour.
bgp_announce_status() {
  ip netns exec "${BGP_NODE_NS[$1]}" "$TANDEM_BIN" status --admin 127.0.0.1:9900 |
    sed -n '/^ANNOUNCE/,/^$/{/^$/d;s/^/           /;p}'
}

# What node $1's tandem logged about its announcement, indented for the tour.
bgp_announce_log() { sed -n 's/.*tandem::announce: /           /p' "$LAB_DIR/node-$1.log"; }

# Whether node $1's tandem has exited (bash reaps its children as they end).
bgp_node_exited() { ! kill -0 "${BGP_NODE_PID[$1]}" 2>/dev/null; }

# The router's next hops for the VIP in its kernel, as node letters in order ("a b c"), or "".
bgp_paths() {
  local route node out=""
  route=$(ip -n "$BGP_ROUTER" -4 route show "$BGP_VIP/32")
  for node in "${BGP_NODES[@]}"; do
    grep -q "via ${BGP_NODE_IP[$node]} " <<<"$route" && out="$out $node"
  done
  echo "${out# }"
}
bgp_paths_are() { [ "$(bgp_paths)" = "$1" ]; }

# Waits up to $2 seconds for the router's next hops to be exactly $1 ("a b c").
bgp_wait_paths() { lab_wait "$2" "router's ECMP route over [$1] (has [$(bgp_paths)])" bgp_paths_are "$1"; }

# How many of the router's BFD sessions are up.
bgp_bfd_up_count() { vtysh --vty_socket "$LAB_DIR/frr-router" -c "show bfd peers brief" | grep -cw up; }
bgp_bfd_all_up() { [ "$(bgp_bfd_up_count)" = "${#BGP_NODES[@]}" ]; }

# Waits up to $1 seconds for BFD to every node: it comes up after BGP, and until then a cut
# link is noticed by BGP's hold time (3 s) instead.
bgp_wait_bfd() { lab_wait "$1" "the router's BFD sessions to every node up" bgp_bfd_all_up; }

# How many attempts in client results $2 were reset while under way when the router's paths
# changed, seen at wall-clock nanosecond $1: routers doing ECMP keep no state per connection, so
# the next packets of such a connection may hash to another node, which resets it. Seen within
# 100 ms: bgp_path_gone_ms looks every 20 ms, and `ip route` takes a few more.
bgp_resets_at_switch() {
  awk -v seen="$1" '$1 == "failed" && $2 == "ConnectionResetError" && $3 <= seen && $4 + 100000000 >= seen' "$2" | wc -l
}

# Milliseconds (up to $2 s) until node $1 is no longer a next hop of the router; "no" if it stays.
bgp_path_gone_ms() {
  local node=$1 limit_ms=$(($2 * 1000)) start elapsed
  start=$(date +%s%N)
  while :; do
    elapsed=$((($(date +%s%N) - start) / 1000000))
    [[ " $(bgp_paths) " == *" $node "* ]] || break
    [ "$elapsed" -lt "$limit_ms" ] || { echo no; return; }
    sleep 0.02
  done
  echo "$elapsed"
}

# The router's route as `ip route` prints it, indented for the tour.
bgp_route_lines() { ip -n "$BGP_ROUTER" -4 route show "$BGP_VIP/32" | sed 's/^/           /'; }

# Opens $1 new connections to the VIP from the client, $2 at a time; prints "a:N,b:N,c:N" (who
# answered: the backend names the node that called it) and, in $3, the failures.
bgp_spread() {
  ip netns exec "$BGP_CLIENT" python3 "$LAB_DIR/bgp_client.py" spread "$BGP_VIP" 80 "$1" "$2" >"$3" 2>"$3.err" ||
    die "spread client failed: $(cat "$3.err")"
  bgp_by_node "$(head -n 1 "$3")"
}

# Turns the client's "198.51.100.11=N ..." into "a:N,b:N,c:N".
bgp_by_node() {
  local counts=" $1 " node out="" n
  for node in "${BGP_NODES[@]}"; do
    n=$(sed -n "s/.* ${BGP_NODE_IP[$node]//./\\.}=\([0-9]*\) .*/\1/p" <<<"$counts")
    out="$out,$node:${n:-0}"
  done
  echo "${out#,}"
}

# Client in the background: a new connection every 5 ms for $1 seconds, results in $2; returns
# once it has run for ${3:-1} seconds.
bgp_client_start() {
  ip netns exec "$BGP_CLIENT" python3 "$LAB_DIR/bgp_client.py" gap "$BGP_VIP" 80 "$1" >"$2" 2>"$2.err" &
  LAB_CLIENT_PID=$!
  LAB_PIDS+=("$LAB_CLIENT_PID")
  sleep "${3:-1}"
}

# Waits for the client; sets CLIENT_ATTEMPTS CLIENT_OK CLIENT_FAILED CLIENT_GAP_MS
# CLIENT_WINDOW_MS (first to last failed attempt, 0 without failures), CLIENT_BY_NODE and
# CLIENT_KINDS.
bgp_client_wait() {
  wait "$LAB_CLIENT_PID" || die "client failed: $(cat "$1.err")"
  local counts
  read -r CLIENT_ATTEMPTS CLIENT_OK CLIENT_FAILED CLIENT_GAP_MS CLIENT_WINDOW_MS counts <"$1"
  CLIENT_BY_NODE=$(bgp_by_node "$counts")
  CLIENT_KINDS=$(sed -n 's/^failures by kind: //p' "$1.err")
}

bgp_write_client() {
  cat >"$LAB_DIR/bgp_client.py" <<'EOF'
# The scale-out demo's client. Each attempt is a new connection with one HTTP/1.1 GET
# ("Connection: close"), successful with a 200 and a body in time; the backend's answer,
# "s1 via 198.51.100.11", names the node that proxied it.
#   spread HOST PORT COUNT PARALLEL: COUNT attempts, PARALLEL at a time, from kernel-chosen ports,
#     each given 5 s (it counts where connections go, not how fast; a SYN lost on a busy machine
#     is sent again after 1 s). Prints "ADDRESS=N ..." (answers per node).
#   gap HOST PORT DURATION: an attempt every 5 ms for DURATION seconds, each given 1 s. Prints
#     "attempts ok failed gap_ms window_ms ADDRESS=N ...": gap_ms is the longest time without a
#     successful answer (by completion time), window_ms the time from the first failed attempt's
#     start to the last one's end; then a line "failed KIND START_NS END_NS" per failed attempt,
#     in wall-clock nanoseconds (`date +%s%N`), for matching against what the shell saw.
# Failures by kind go to stderr.
import asyncio, sys, time

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
PERIOD = 0.005
TIMEOUT = 5.0 if mode == "spread" else 1.0
request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
results = []   # (start, end, node or None)
failed_at = []  # (kind, wall-clock start, wall-clock end), in nanoseconds
errors = {}

async def attempt():
    start, start_ns = time.monotonic(), time.time_ns()
    node, kind = None, None
    try:
        async def go():
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                return await reader.read()
            finally:
                writer.close()
        reply = await asyncio.wait_for(go(), TIMEOUT)
        head, _, body = reply.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1:2]
        words = body.split()
        if status == [b"200"] and len(words) == 3 and words[1] == b"via":
            node = words[2].decode()
        else:
            kind = f"HTTP {status[0].decode(errors='replace')}" if status else "EmptyReply"
    except Exception as error:
        kind = type(error).__name__
        if kind == "OSError" and error.errno:
            kind = f"OSError {error.errno}"
    results.append((start, time.monotonic(), node))
    if kind:
        errors[kind] = errors.get(kind, 0) + 1
        failed_at.append((kind.replace(" ", ""), start_ns, time.time_ns()))

def by_node():
    counts = {}
    for _, _, node in results:
        if node:
            counts[node] = counts.get(node, 0) + 1
    return " ".join(f"{node}={n}" for node, n in sorted(counts.items()))

async def spread(count, parallel):
    left = iter(range(count))
    async def worker():
        for _ in left:
            await attempt()
    await asyncio.gather(*(worker() for _ in range(parallel)))
    print(by_node())

async def gap(duration):
    loop_start = time.monotonic()
    tasks, n = [], 0
    while n * PERIOD < duration:
        delay = loop_start + n * PERIOD - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(attempt()))
        n += 1
    await asyncio.gather(*tasks)
    done = sorted(end for _, end, node in results if node)
    edges = [loop_start] + done + [max(end for _, end, _ in results)]
    longest = max(b - a for a, b in zip(edges, edges[1:]))
    failures = [(start, end) for start, end, node in results if not node]
    window = max(end for _, end in failures) - min(start for start, _ in failures) if failures else 0
    print(len(results), len(done), len(failures), f"{longest * 1000:.0f}", f"{window * 1000:.0f}", by_node())
    for kind, start_ns, end_ns in failed_at:
        print("failed", kind, start_ns, end_ns)

if mode == "spread":
    asyncio.run(spread(int(sys.argv[4]), int(sys.argv[5])))
else:
    asyncio.run(gap(float(sys.argv[4])))
kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(errors.items()))
print("failures by kind:", kinds or "none", file=sys.stderr)
EOF
}
