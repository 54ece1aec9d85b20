# shellcheck shell=bash
# Shared helpers for deploy/demo.sh and benches/failover.sh: a throwaway L2 segment made of network
# namespaces, tiny HTTP backends and a client that opens a new connection every 5 ms.
# Sourced, not run. Nothing here touches the root namespace: every veth is created inside the
# switch namespace with its peer moved straight into the host's namespace.
#
#   node a 198.51.100.11   node b 198.51.100.12   client 198.51.100.100
#   s1     198.51.100.21   s2     198.51.100.22   VIP    198.51.100.10
#
# Names are unique per run (prefix "tdm<pid>"), and lab_down removes everything lab_up made.

LAB_VIP=198.51.100.10
LAB_PREFIX="tdm$$"
LAB_SW="$LAB_PREFIX-sw"
LAB_A="$LAB_PREFIX-a"
LAB_B="$LAB_PREFIX-b"
LAB_C="$LAB_PREFIX-c"
LAB_S1="$LAB_PREFIX-s1"
LAB_S2="$LAB_PREFIX-s2"
LAB_DIR=""
LAB_PIDS=()          # background processes to stop on exit (their ids, never names)
LAB_NAMESPACES=()

say() { printf '%s %s\n' "$(date +%T)" "$*"; }
LAB_FAILED=0
die() { printf 'error: %s\n' "$*" >&2; LAB_FAILED=1; exit 1; }

lab_require_root() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, raw sockets): sudo $0"
  local tool
  for tool in ip python3 curl; do
    command -v "$tool" >/dev/null || die "$tool not found"
  done
}

# Builds tandem with the default target directory (or $CARGO_TARGET_DIR) unless TANDEM_BIN points
# at a binary already. Under sudo, builds as the invoking user so target/ stays theirs.
lab_build_tandem() {
  local root=$1
  if [ -n "${TANDEM_BIN:-}" ]; then
    [ -x "$TANDEM_BIN" ] || die "TANDEM_BIN=$TANDEM_BIN is not an executable"
    return
  fi
  say "building tandem (cargo build --release)"
  if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && ! command -v cargo >/dev/null; then
    sudo -u "$SUDO_USER" -H bash -lc "cd '$root' && cargo build --release --quiet" \
      || die "build failed; build as yourself (cargo build --release), then: sudo TANDEM_BIN=target/release/tandem $0"
  else
    command -v cargo >/dev/null || die "cargo not found; build first, then run with TANDEM_BIN=path/to/tandem"
    (cd "$root" && cargo build --release --quiet) || die "cargo build --release failed"
  fi
  TANDEM_BIN="${CARGO_TARGET_DIR:-$root/target}/release/tandem"
  [ -x "$TANDEM_BIN" ] || die "no binary at $TANDEM_BIN after the build"
}

lab_add_ns() {
  ip netns add "$1"
  LAB_NAMESPACES+=("$1")
  ip -n "$1" link set lo up
}

# Host namespace $1 with address $2, on switch port $3.
lab_add_host() {
  local ns=$1 address=$2 port=$3
  lab_add_ns "$ns"
  ip -n "$LAB_SW" link add "$port" type veth peer name eth0 netns "$ns"
  ip -n "$LAB_SW" link set "$port" master br0 up
  ip -n "$ns" addr add "$address/24" dev eth0
  ip -n "$ns" link set eth0 up
}

lab_up() {
  LAB_DIR=$(mktemp -d /tmp/tandem-lab.XXXXXX)
  lab_add_ns "$LAB_SW"
  ip -n "$LAB_SW" link add br0 type bridge
  # Without snooping the bridge floods multicast: no IGMP timing in the way of VRRP adverts.
  ip -n "$LAB_SW" link set br0 type bridge mcast_snooping 0
  ip -n "$LAB_SW" link set br0 up
  lab_add_host "$LAB_A" 198.51.100.11 pa
  lab_add_host "$LAB_B" 198.51.100.12 pb
  lab_add_host "$LAB_C" 198.51.100.100 pc
  # The client opens tens of thousands of connections to one address (wrk against a proxy that
  # closes client connections adds more): the default 28k ephemeral ports, each held 60 s in
  # TIME-WAIT, run out within a run. Per-namespace sysctls, the client's namespace only.
  ip netns exec "$LAB_C" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
  lab_add_host "$LAB_S1" 198.51.100.21 ps1
  lab_add_host "$LAB_S2" 198.51.100.22 ps2
  lab_write_python
}

# Stops what we started (by process id), then deletes the namespaces (which removes their veths)
# and the temporary directory. Safe to call twice and after a partial lab_up.
lab_down() {
  local pid ns i
  for pid in "${LAB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for pid in "${LAB_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${LAB_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  LAB_PIDS=()
  for ((i = ${#LAB_NAMESPACES[@]} - 1; i >= 0; i--)); do
    ns=${LAB_NAMESPACES[i]}
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  LAB_NAMESPACES=()
  if [ -n "$LAB_DIR" ] && [ "$LAB_FAILED" = 1 ]; then
    printf 'logs and configs kept in %s:\n' "$LAB_DIR" >&2
    local log
    for log in "$LAB_DIR"/*.log; do
      [ -s "$log" ] || continue
      printf -- '--- %s (last lines)\n' "${log##*/}" >&2
      tail -n 5 "$log" >&2
    done
  elif [ -n "$LAB_DIR" ]; then
    rm -rf "$LAB_DIR"
  fi
  LAB_DIR=""
}

# Runs a command in the background inside namespace $1; its pid ends up in $LAB_LAST_PID.
# `ip netns exec` execs the command itself, so the pid is the command's own.
lab_spawn() {
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 &
  LAB_LAST_PID=$!
  LAB_PIDS+=("$LAB_LAST_PID")
}

lab_start_backends() {
  lab_spawn "$LAB_S1" "$LAB_DIR/s1.log" python3 "$LAB_DIR/backend.py" 198.51.100.21 8080 s1
  LAB_S1_PID=$LAB_LAST_PID
  lab_spawn "$LAB_S2" "$LAB_DIR/s2.log" python3 "$LAB_DIR/backend.py" 198.51.100.22 8080 s2
  LAB_S2_PID=$LAB_LAST_PID
  lab_wait 5 "backends listening" lab_backends_up
}

lab_backends_up() {
  ip netns exec "$LAB_C" curl -sf --max-time 1 -o /dev/null http://198.51.100.21:8080/health &&
    ip netns exec "$LAB_C" curl -sf --max-time 1 -o /dev/null http://198.51.100.22:8080/health
}

# lab_wait SECONDS WHAT COMMAND...: polls COMMAND every 50 ms; fails the run after SECONDS.
lab_wait() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what: not within ${limit}s"
    sleep 0.05
  done
}

# Whether namespace $1 has the VIP on eth0.
lab_holds_vip() { ip -n "$1" -o -4 addr show dev eth0 | grep -q " $LAB_VIP/"; }
lab_vip_line() {
  ip -n "$1" -o -4 addr show dev eth0 | awk -v vip="$LAB_VIP/" 'index($4, vip) == 1 {
    line = $4 " on " $2; for (i = 5; i < NF; i++) if ($i == "valid_lft") line = line ", valid_lft " $(i + 1)
    print line }'
}

# The node that holds the VIP alone: "a", "b", "both" or "none".
lab_vip_owner() {
  local a=0 b=0
  lab_holds_vip "$LAB_A" && a=1
  lab_holds_vip "$LAB_B" && b=1
  case "$a$b" in 10) echo a ;; 01) echo b ;; 11) echo both ;; *) echo none ;; esac
}

# One request through the VIP from the client; prints the backend's answer ("s1 via 198.51.100.11").
lab_curl_vip() { ip netns exec "$LAB_C" curl -s --max-time 1 "http://$LAB_VIP/"; }

# Waits until node $1 (a|b) holds the VIP alone and the client is served through the proxy on it.
lab_wait_master() {
  local node=$1 ip
  [ "$node" = a ] && ip=198.51.100.11 || ip=198.51.100.12
  lab_wait "${2:-10}" "node $node holds the VIP and serves" lab__serves_via "$node" "$ip"
}
lab__serves_via() { [ "$(lab_vip_owner)" = "$1" ] && lab_curl_vip | grep -q "via $2\$"; }

# Waits up to $2 seconds for namespace $1 to lose the VIP; prints the seconds it took or "no".
lab_vip_gone_within() {
  local ns=$1 limit=$2 start now
  start=$(date +%s%N)
  while lab_holds_vip "$ns"; do
    now=$(date +%s%N)
    if [ $(((now - start) / 1000000)) -ge $((limit * 1000)) ]; then
      echo no
      return
    fi
    sleep 0.05
  done
  now=$(date +%s%N)
  awk -v ms=$(((now - start) / 1000000)) 'BEGIN { printf "%.1f s\n", ms / 1000 }'
}

# Client in the background: a new connection to VIP:80 every 5 ms for $1 seconds, results in $2.
lab_client_start() {
  ip netns exec "$LAB_C" python3 "$LAB_DIR/client.py" "$LAB_VIP" 80 "$1" >"$2" 2>"$2.err" &
  LAB_CLIENT_PID=$!
  LAB_PIDS+=("$LAB_CLIENT_PID")
  # Let it reach its steady rate before anything breaks.
  sleep "${3:-1}"
}
lab_client_wait() { wait "$LAB_CLIENT_PID" || die "client failed: $(cat "$1.err")"; }

lab_write_python() {
  cat >"$LAB_DIR/backend.py" <<'EOF'
# Tiny HTTP backend: answers "NAME via PEER" (PEER is the proxy node that connected), /health "ok".
import http.server, socketserver, sys

host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("ok\n" if self.path == "/health" else f"{name} via {self.client_address[0]}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024   # the default of 5 drops SYNs under a burst
    daemon_threads = True

Server((host, port), Handler).serve_forever()
EOF
  cat >"$LAB_DIR/client.py" <<'EOF'
# Opens a new connection to HOST:PORT every 5 ms for DURATION seconds, each an HTTP/1.1 GET with
# "Connection: close". An attempt succeeds with a 200 and a body within 1 s. Prints one summary
# line: attempts ok failed gap_ms, where gap_ms is the longest time between two consecutive
# successful responses (by completion time), i.e. how long the service was unreachable.
import asyncio, sys, time

host, port, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
PERIOD, TIMEOUT = 0.005, 1.0
request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
results = []
errors = {}

async def attempt():
    start = time.monotonic()
    ok = False
    try:
        async def go():
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                reply = await reader.read()
            finally:
                writer.close()
            return reply
        reply = await asyncio.wait_for(go(), TIMEOUT)
        head, _, body = reply.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1:2]
        ok = status == [b"200"] and body.strip() != b""
        if not ok:
            kind = f"HTTP {status[0].decode(errors='replace')}" if status else "EmptyReply"
            errors[kind] = errors.get(kind, 0) + 1
    except Exception as error:
        kind = type(error).__name__
        if kind == "OSError" and error.errno:   # say which one (e.g. 99 EADDRNOTAVAIL, 113 EHOSTUNREACH)
            kind = f"OSError {error.errno}"
        errors[kind] = errors.get(kind, 0) + 1
    results.append((start, time.monotonic(), ok))

async def main():
    loop_start = time.monotonic()
    tasks, n = [], 0
    while True:
        due = loop_start + n * PERIOD
        if due - loop_start >= duration:
            break
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(attempt()))
        n += 1
    await asyncio.gather(*tasks)
    done = sorted(end for _, end, ok in results if ok)
    edges = [loop_start] + done + [max(end for _, end, _ in results)]
    gap = max(b - a for a, b in zip(edges, edges[1:]))
    failed = sum(1 for r in results if not r[2])
    print(f"{len(results)} {len(done)} {failed} {gap * 1000:.0f}")
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(errors.items()))
    print("failures by kind:", kinds or "none", file=sys.stderr)

asyncio.run(main())
EOF
}

# Reads a client summary file: sets CLIENT_ATTEMPTS CLIENT_OK CLIENT_FAILED CLIENT_GAP_MS.
lab_client_read() {
  read -r CLIENT_ATTEMPTS CLIENT_OK CLIENT_FAILED CLIENT_GAP_MS <"$1"
  CLIENT_KINDS=$(sed -n 's/^failures by kind: //p' "$1.err")
}

# wrk from the client against the VIP in the background: lab_wrk_start SECONDS CONNECTIONS THREADS OUT
# [CPU list to pin wrk to]. Keep-alive requests, wrk's default 2 s timeout.
lab_wrk_start() {
  local seconds=$1 connections=$2 threads=$3 out=$4 cpus=${5:-}
  local pin=()
  [ -n "$cpus" ] && pin=(taskset -c "$cpus")
  ip netns exec "$LAB_C" "${pin[@]}" wrk -t"$threads" -c"$connections" -d"${seconds}s" \
    "http://$LAB_VIP/" >"$out" 2>&1 &
  LAB_WRK_PID=$!
  LAB_PIDS+=("$LAB_WRK_PID")
}
lab_wrk_wait() { wait "$LAB_WRK_PID" || die "wrk failed: $(cat "$1")"; }
# Sockets in TIME-WAIT in the client's namespace (how many connections the client closed lately).
lab_client_timewait() { ip netns exec "$LAB_C" ss -tan state time-wait | tail -n +2 | wc -l; }

# Reads wrk's output: sets WRK_REQUESTS WRK_NON2XX WRK_SOCKET (connect+read+write+timeout) WRK_RPS
# and WRK_SOCKET_KINDS ("connect 0, read 0, write 0, timeout 0").
lab_wrk_read() {
  WRK_REQUESTS=$(awk '/requests in/ { print $1 }' "$1")
  WRK_NON2XX=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$1")
  WRK_NON2XX=${WRK_NON2XX:-0}
  WRK_SOCKET_KINDS=$(sed -n 's/^ *Socket errors: //p' "$1")
  WRK_SOCKET=$(printf '%s\n' "$WRK_SOCKET_KINDS" | awk -F', ' '{ s = 0; for (i = 1; i <= NF; i++) { split($i, kv, " "); s += kv[2] } print s }')
  WRK_SOCKET=${WRK_SOCKET:-0}
  WRK_SOCKET_KINDS=${WRK_SOCKET_KINDS:-none}
  WRK_RPS=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$1")
}

# Counts the lines of file $1 matching the extended regex $2 (0 for a missing file).
lab_count() {
  local n
  n=$(grep -cE -- "$2" "$1" 2>/dev/null) || true
  echo "${n:-0}"
}

# CPU $1's busy and total clock ticks since boot, from /proc/stat ("busy total").
lab_cpu_busy_ticks() { awk -v cpu="cpu$1" '$1 == cpu { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }

# CPU time (user + system, in clock ticks) that process $1 has used, all threads.
lab_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Samples the VIP's owner every 100 ms for $1 seconds in the background; writes every distinct
# owner seen ("a", "b", "both", "none") to $2, one per line, as it first appears.
lab_vip_watch_start() {
  local seconds=$1 out=$2
  (
    end=$((SECONDS + seconds))
    : >"$out"
    while [ "$SECONDS" -lt "$end" ]; do
      owner=$(lab_vip_owner)
      grep -qx "$owner" "$out" || echo "$owner" >>"$out"
      sleep 0.1
    done
  ) &
  LAB_WATCH_PID=$!
  LAB_PIDS+=("$LAB_WATCH_PID")
}
