#!/usr/bin/env bash
# Load benchmark: tandem, HAProxy and nginx as reverse proxies on loopback, one at a time, each
# with one worker thread pinned to CPU 0, in front of one nginx backend; the client (wrk, or
# openssl s_time for full TLS handshakes) and the backend share CPU 1. Per proxy and case it
# reports the client's rate and latency, the proxy's CPU time (utime+stime of all its processes)
# and, for 10,000 idle client connections, its RSS before and after. The HTTPS cases use one
# ECDSA P-256 certificate, generated at start, for all three proxies; the case of TLS to the
# server gives the backend one signed by a CA generated too, which the proxies verify.
# Installs and builds nothing: it says what is missing and exits 1. See usage() for options.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: benches/load.sh [options]
  --only tandem|haproxy|nginx   benchmark one proxy (default: all three)
  --duration SECONDS            length of each measured run (default 10)
  --connections N               wrk connections for the small-response cases (default 64)
  --handshake-clients N         openssl s_time processes for the full-TLS-handshake case, each
                                one connection at a time (default 8)
  --base-port PORT              ports PORT..PORT+7: backend, proxy http, proxy tcp, tandem admin,
                                proxy https, proxy http with rules, backend https, proxy http to
                                the backend's https (default 18080)
  --tandem-bare                 tandem without metrics and access log (default: both on, as in
                                the shipped config: admin endpoint, JSON access log to a file)
  --tandem-extra FILE           YAML appended to tandem's generated config (or env TANDEM_EXTRA)
  --peers-log                   HAProxy and nginx log every request (tcp: every session) to a file
                                too, as tandem does: HAProxy with httplog and tcplog to its stdout
                                (one write per line), nginx with access_log (combined format for
                                http), buffered 64 KiB or 1 s as tandem's writer batches
  --rounds N                    rounds of every case (default 5): within a round each case runs
                                against the proxies back to back, each in a fresh process, their
                                order rotating by round; the table gives each figure's median
  --idle N                      idle client connections for the memory case (default 10000)
  --idle-send                   idle clients send one request first, then hold the connection
  --idle-partial                idle clients send part of a request head and hold the connection
                                waiting for the rest (a slow client)
  --cases LIST                  the measured cases to run, comma-separated, from keepalive, close,
                                tcp, 1mib, tlsnew, tlskeepalive, rules, tlsserver (default: all);
                                "none" runs only the idle-memory case. rules: keep-alive through
                                a frontend of 20 rules, the first 19 not matching (tandem's rules,
                                HAProxy's ACLs and http-request lines; nginx is not run).
                                tlsserver: keep-alive, the proxy speaking TLS to the backend and
                                verifying its certificate (HAProxy's ssl verify required ca-file,
                                nginx's proxy_ssl_verify on)
env: TANDEM (default target/release/tandem), PROXY_CPU (0), LOAD_CPU (1)
EOF
}

only="" cases_option="" duration=10 connections=64 handshake_clients=8 base_port=18080 idle=10000 idle_send=0
rounds=5
tandem_bare=0 peers_log=0
tandem_extra=${TANDEM_EXTRA:-}
tandem=${TANDEM:-target/release/tandem}
proxy_cpu=${PROXY_CPU:-0} load_cpu=${LOAD_CPU:-1}
command_line=$(printf '%q ' "$0" "$@") command_line=${command_line% }
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --handshake-clients) handshake_clients=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    --tandem-extra) tandem_extra=$2; shift 2 ;;
    --tandem-bare) tandem_bare=1; shift ;;
    --peers-log) peers_log=1; shift ;;
    --idle) idle=$2; shift 2 ;;
    --idle-send) idle_send=1; shift ;;
    --idle-partial) idle_send=partial; shift ;;
    --cases) cases_option=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 1 ;;
  esac
done
case "$only" in ""|tandem|haproxy|nginx) ;; *) echo "--only: tandem, haproxy or nginx" >&2; exit 1 ;; esac
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds: a positive number" >&2; exit 1; }
proxies=(haproxy nginx tandem)
# The measured cases, in the order they run; the idle-memory case runs apart, once.
cases=(keepalive close tcp 1mib tlsnew tlskeepalive rules tlsserver)
case "$cases_option" in
  "") ;;
  none) cases=() ;;
  *)
    IFS=, read -ra cases <<<"$cases_option"
    for case in "${cases[@]}"; do
      case "$case" in keepalive|close|tcp|1mib|tlsnew|tlskeepalive|rules|tlsserver) ;;
        *) echo "--cases: unknown case $case" >&2; exit 1 ;;
      esac
    done
    ;;
esac
[ -n "$only" ] && proxies=("$only")
backend_port=$base_port http_port=$((base_port + 1)) tcp_port=$((base_port + 2))
admin_port=$((base_port + 3)) https_port=$((base_port + 4)) rules_port=$((base_port + 5))
backend_tls_port=$((base_port + 6)) tls_server_port=$((base_port + 7))

here=$(cd "$(dirname "$0")" && pwd)
tmp="" pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do stop_process "$pid"; done
  [ -n "$tmp" ] && rm -rf "$tmp"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "load.sh: $*" >&2; exit 1; }

check_prerequisites() {
  local missing=() tool
  declare -A package=([wrk]=wrk [nginx]=nginx [haproxy]=haproxy [openssl]=openssl
    [taskset]=util-linux [python3]=python3 [ss]=iproute2 [ps]=procps)
  local tools=(wrk nginx openssl taskset python3 ss ps)
  if benchmarks haproxy; then tools+=(haproxy); fi
  for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${package[$tool]}")
  done
  if command -v nginx >/dev/null && nginx -V 2>&1 | grep -q -- '--with-stream=dynamic' &&
    [ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
    missing+=(libnginx-mod-stream)
  fi
  [ ${#missing[@]} -eq 0 ] || die "missing tools: run: apt-get install ${missing[*]}"
  if benchmarks tandem; then
    [ -x "$tandem" ] || die "no tandem binary at $tandem: run: cargo build --release (or set TANDEM=path)"
    [ -z "$tandem_extra" ] || [ -r "$tandem_extra" ] || die "cannot read --tandem-extra $tandem_extra"
  fi
  local port
  for port in "$backend_port" "$http_port" "$tcp_port" "$admin_port" "$https_port" "$rules_port" \
    "$backend_tls_port" "$tls_server_port"; do
    [ -z "$(ss -Hltn "sport = :$port")" ] || die "127.0.0.1:$port is in use: pick another --base-port"
  done
}

benchmarks() { [[ " ${proxies[*]} " == *" $1 "* ]]; }

# The process and its direct children (nginx: master and worker).
children() { ps -o pid= --ppid "$1" 2>/dev/null || true; }
process_tree() { echo "$1"; children "$1"; }

# utime+stime of the process tree, in clock ticks (each /proc/PID/stat covers all its threads).
cpu_ticks() {
  local pid stat fields total=0
  for pid in $(process_tree "$1"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -ra fields <<<"${stat##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# VmRSS of the process tree, in KiB.
rss_kib() {
  local pid kib total=0
  for pid in $(process_tree "$1"); do
    kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

# Busy share of CPUs $proxy_cpu and $load_cpu over $1 seconds while nothing of ours runs: other
# tenants' load, which the figures cannot tell from the proxies' own.
background_cpu() {
  local before after
  before=$(grep -E "^cpu($proxy_cpu|$load_cpu) " /proc/stat)
  sleep "$1"
  after=$(grep -E "^cpu($proxy_cpu|$load_cpu) " /proc/stat)
  paste -d' ' <(echo "$before") <(echo "$after") | awk -v s="$1" -v hz="$(getconf CLK_TCK)" '{
    n = (NF - 2) / 2; busy = 0   # user nice system idle iowait irq softirq steal: all but idle, iowait
    for (i = 2; i <= 9; i++) if (i != 5 && i != 6) busy += $(i + n + 1) - $i
    printf "%s%s %.0f%%", sep, $1, 100 * busy / (s * hz); sep = ", " } END { print "" }'
}

wait_port() {
  local port=$1 pid=$2 log=$3
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && kill -0 "$pid" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "process $pid exited before listening on $port"; }
    sleep 0.1
  done
  cat "$log" >&2
  die "nothing listens on 127.0.0.1:$port after 10 s"
}

# One self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, shared by all three
# proxies: cert.pem and key.pem, and both in combined.pem for HAProxy.
make_certificate() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >"$tmp/openssl.out" 2>&1 ||
    { cat "$tmp/openssl.out" >&2; die "openssl could not make the test certificate"; }
  cat "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/combined.pem"
  # The backend's for TLS to the server: a leaf (not a CA, which verifiers refuse as a server's
  # certificate) for localhost and 127.0.0.1, signed by backend-ca.pem.
  printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
    'keyUsage=digitalSignature' 'extendedKeyUsage=serverAuth' >"$tmp/backend-ext.cnf"
  { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj /CN=bench-backend-ca -keyout "$tmp/backend-ca-key.pem" -out "$tmp/backend-ca.pem" &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
      -keyout "$tmp/backend-key.pem" -out "$tmp/backend.csr" &&
    openssl x509 -req -in "$tmp/backend.csr" -CA "$tmp/backend-ca.pem" \
      -CAkey "$tmp/backend-ca-key.pem" -CAcreateserial -days 2 -extfile "$tmp/backend-ext.cnf" \
      -out "$tmp/backend-cert.pem"; } >"$tmp/openssl.out" 2>&1 ||
    { cat "$tmp/openssl.out" >&2; die "openssl could not make the backend's certificate"; }
}

write_configs() {
  local stream_module="" timeout=300s
  # Off by default: the reference figures are of HAProxy and nginx at their fastest.
  local haproxy_global_log="" haproxy_http_log="" haproxy_tcp_log=""
  local nginx_http_log="access_log off;" nginx_stream_log=""
  if [ "$peers_log" = 1 ]; then
    # dontlognull: like tandem's http frontends, no line for a connection that sent nothing.
    haproxy_global_log="log stdout format raw local0"
    haproxy_http_log="option httplog
  option dontlognull" haproxy_tcp_log="option tcplog"
    nginx_http_log="access_log $tmp/nginx-access.log combined buffer=64k flush=1s;"
    nginx_stream_log="log_format session '\$remote_addr [\$time_local] \$status \$bytes_sent \$bytes_received \$session_time';
  access_log $tmp/nginx-stream.log session buffer=64k flush=1s;"
  fi
  nginx -V 2>&1 | grep -q -- '--with-stream=dynamic' &&
    stream_module="load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
  mkdir -p "$tmp/www"
  head -c 1048576 /dev/zero >"$tmp/www/1m.bin"
  cat >"$tmp/backend.conf" <<EOF
worker_processes 1;
pid $tmp/backend.pid;
error_log $tmp/backend.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout $timeout;
  default_type text/plain;
  server {
    listen 127.0.0.1:$backend_port backlog=4096;
    listen 127.0.0.1:$backend_tls_port ssl backlog=4096;
    ssl_certificate $tmp/backend-cert.pem;
    ssl_certificate_key $tmp/backend-key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = /1m.bin { root $tmp/www; }
    location / { return 200 "hello\n"; }
  }
}
EOF
  cat >"$tmp/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 40000
  # HAProxy asks for 2 fds per maxconn; where the hard limit is lower (no CAP_SYS_RESOURCE),
  # start anyway: idle clients need one fd each, like in the other two.
  no strict-limits
  $haproxy_global_log
defaults
  log global
  mode http
  option http-keep-alive
  option forwardfor
  http-reuse always
  timeout connect 5s
  timeout client $timeout
  timeout server $timeout
  timeout http-request $timeout
  timeout http-keep-alive $timeout
frontend http
  bind 127.0.0.1:$http_port
  maxconn 40000
  $haproxy_http_log
  default_backend web
backend web
  server s1 127.0.0.1:$backend_port
frontend https
  bind 127.0.0.1:$https_port ssl crt $tmp/combined.pem alpn http/1.1 ssl-min-ver TLSv1.2
  maxconn 40000
  $haproxy_http_log
  default_backend web
# The rules case: 19 conditions that a benchmark request (GET /, no cookie, query or role)
# does not meet, then one that sends it on, as tandem's rules frontend has them.
frontend rules
  bind 127.0.0.1:$rules_port
  maxconn 40000
  $haproxy_http_log
  http-request deny if { path_beg /admin } !{ src 192.0.2.0/24 }
  http-request redirect location https://new.example.com%[path] code 301 if { hdr(host) -i old.example.com }
  http-request return status 200 content-type text/plain string ok if { path /healthz }
  http-request deny deny_status 405 if { method PUT DELETE } !{ req.hdr(x-role) -m str admin }
  http-request deny if { req.hdr(user-agent) -m reg -i badbot }
  http-request deny if { src 203.0.113.0/24 }
  http-request deny if { urlp(debug) 1 }
  http-request redirect location https://www.example.com%[path] code 308 if { hdr_end(host) -i .example.org }
  http-request return status 204 if { path /favicon.ico }
  http-request deny if { path_reg ^/[.]git/ }
  use_backend web if { path_reg ^/api/v[0-9]+/ }
  use_backend web if { req.cook(beta) 1 }
  use_backend web if { hdr(host) -i static.example.com }
  use_backend web if { path_beg /img/ }
  use_backend web if { path_beg /css/ }
  use_backend web if { path_beg /js/ }
  use_backend web if { hdr(x-canary) -m found }
  use_backend web if { path_end .php }
  use_backend web if { method POST } { path_beg /upload }
  use_backend web if { path_beg / }
  default_backend web
# TLS to the server: the backend's certificate verified against its CA, for the name sent.
frontend tlsserver
  bind 127.0.0.1:$tls_server_port
  maxconn 40000
  $haproxy_http_log
  default_backend webtls
backend webtls
  server s1 127.0.0.1:$backend_tls_port ssl verify required ca-file $tmp/backend-ca.pem sni str(localhost)
frontend tcp
  mode tcp
  bind 127.0.0.1:$tcp_port
  maxconn 40000
  $haproxy_tcp_log
  default_backend raw
backend raw
  mode tcp
  server s1 127.0.0.1:$backend_port
EOF
  # proxy_max_temp_file_size 0: a 1 MiB response streams through memory as in the other two
  # proxies, instead of being spooled to a temp file.
  cat >"$tmp/nginx.conf" <<EOF
$stream_module
worker_processes 1;
worker_rlimit_nofile $(ulimit -n);
pid $tmp/nginx.pid;
error_log $tmp/nginx.log warn;
events { worker_connections 40000; }
http {
  $nginx_http_log
  keepalive_requests 1000000;
  keepalive_timeout $timeout;
  client_header_timeout $timeout;
  upstream web { server 127.0.0.1:$backend_port; keepalive 64; keepalive_requests 1000000; }
  upstream webtls { server 127.0.0.1:$backend_tls_port; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$tls_server_port backlog=4096;
    location / {
      proxy_pass https://webtls;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $tmp/backend-ca.pem;
      proxy_ssl_server_name on;
      proxy_ssl_name localhost;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
  server {
    listen 127.0.0.1:$http_port backlog=4096;
    # nginx offers ALPN http/1.1 by itself (h2 only with http2 on the listen).
    listen 127.0.0.1:$https_port ssl backlog=4096;
    ssl_certificate $tmp/cert.pem;
    ssl_certificate_key $tmp/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://web;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_max_temp_file_size 0;
    }
  }
}
stream {
  $nginx_stream_log
  server { listen 127.0.0.1:$tcp_port backlog=4096; proxy_pass 127.0.0.1:$backend_port; proxy_timeout $timeout; }
}
EOF
  cat >"$tmp/tandem.yaml" <<EOF
node: { name: bench, threads: 1, shutdown_timeout: 2s }
frontends:
  - name: http
    listen: 127.0.0.1:$http_port
    mode: http
    backend: web
    max_connections: 40000
    timeouts: { request_header: $timeout, client_idle: $timeout }
  - name: https
    listen: 127.0.0.1:$https_port
    mode: http
    tls:
      certificates:
        - { cert: $tmp/cert.pem, key: $tmp/key.pem }
      alpn: [http/1.1]
    backend: web
    max_connections: 40000
    timeouts: { request_header: $timeout, client_idle: $timeout }
  - name: rules
    listen: 127.0.0.1:$rules_port
    mode: http
    backend: web
    max_connections: 40000
    timeouts: { request_header: $timeout, client_idle: $timeout }
    rules:
      - { match: { path_prefix: /admin, not: { client: 192.0.2.0/24 } }, deny: 403 }
      - { match: { host: old.example.com }, redirect: { location: "https://new.example.com{path}", code: 301 } }
      - { match: { path: /healthz }, respond: { status: 200, body: ok, headers: { Content-Type: text/plain } } }
      - { match: { method: [PUT, DELETE], header: { X-Role: "!admin" } }, deny: 405 }
      - { match: { header: { User-Agent: "~(?i)badbot" } }, deny: 403 }
      - { match: { client: 203.0.113.0/24 }, deny: 403 }
      - { match: { query: { debug: "1" } }, deny: 403 }
      - { match: { host: "*.example.org" }, redirect: { location: "https://www.example.com{path}", code: 308 } }
      - { match: { path: /favicon.ico }, respond: { status: 204 } }
      - { match: { path_regex: "^/[.]git/" }, deny: 403 }
      - { match: { path_regex: "^/api/v[0-9]+/" }, backend: web }
      - { match: { cookie: { beta: "1" } }, backend: web }
      - { match: { host: static.example.com }, backend: web }
      - { match: { path_prefix: /img/ }, backend: web }
      - { match: { path_prefix: /css/ }, backend: web }
      - { match: { path_prefix: /js/ }, backend: web }
      - { match: { header: { X-Canary: true } }, backend: web }
      - { match: { path_regex: "[.]php$" }, backend: web }
      - { match: { method: POST, path_prefix: /upload }, backend: web }
      - { match: { path_prefix: / }, backend: web }
  - name: tlsserver
    listen: 127.0.0.1:$tls_server_port
    mode: http
    backend: webtls
    max_connections: 40000
    timeouts: { request_header: $timeout, client_idle: $timeout }
  - name: tcp
    listen: 127.0.0.1:$tcp_port
    mode: tcp
    backend: raw
    max_connections: 40000
    timeouts: { client_idle: $timeout }
backends:
  - name: web
    balance: round_robin
    servers: [{ name: s1, address: 127.0.0.1:$backend_port }]
  - name: raw
    balance: round_robin
    servers: [{ name: s1, address: 127.0.0.1:$backend_port }]
  - name: webtls
    balance: round_robin
    tls: { ca: $tmp/backend-ca.pem, sni: localhost }
    servers: [{ name: s1, address: 127.0.0.1:$backend_tls_port }]
EOF
  if [ "$tandem_bare" = 0 ]; then
    cat >>"$tmp/tandem.yaml" <<EOF
admin: { listen: 127.0.0.1:$admin_port }
access_log: { format: json, path: $tmp/tandem-access.log }
EOF
  fi
  if [ -n "$tandem_extra" ]; then cat "$tandem_extra" >>"$tmp/tandem.yaml"; fi
  if benchmarks tandem; then
    "$tandem" check --config "$tmp/tandem.yaml" >"$tmp/check.out" 2>&1 ||
      { cat "$tmp/check.out" >&2; die "tandem rejects its config (with --tandem-extra ${tandem_extra:-none})"; }
  fi
  cat >"$tmp/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    summary.bytes, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
EOF
}

# Starts a command pinned to a CPU in the background; sets $started to its PID.
start_pinned() {
  local cpu=$1 log=$2
  shift 2
  taskset -c "$cpu" "$@" >"$log" 2>&1 &
  started=$!
  pids+=("$started")
}

start_proxy() {
  # Each run's access logs start empty: all rounds' lines would take gigabytes.
  rm -f "$tmp/tandem-access.log" "$tmp/nginx-access.log" "$tmp/nginx-stream.log"
  case "$1" in
    haproxy) start_pinned "$proxy_cpu" "$tmp/haproxy.out" haproxy -db -f "$tmp/haproxy.cfg" ;;
    nginx) start_pinned "$proxy_cpu" "$tmp/nginx.out" nginx -e "$tmp/nginx.log" -p "$tmp" \
      -c "$tmp/nginx.conf" -g 'daemon off;' ;;
    tandem) start_pinned "$proxy_cpu" "$tmp/tandem.out" "$tandem" run --config "$tmp/tandem.yaml" ;;
  esac
  proxy_pid=$started
  wait_port "$http_port" "$proxy_pid" "$tmp/$1.out"
  wait_port "$tcp_port" "$proxy_pid" "$tmp/$1.out"
  wait_port "$https_port" "$proxy_pid" "$tmp/$1.out"
  wait_port "$tls_server_port" "$proxy_pid" "$tmp/$1.out"
}

forget() {
  local pid kept=()
  for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  pids=("${kept[@]}")
}

# TERM, then KILL (with its children) after 5 s; forgets the PID so cleanup won't signal it again.
stop_process() {
  local pid=$1 child kids
  forget "$pid"
  kids=$(children "$pid")
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  for child in $kids $pid; do kill -KILL "$child" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}

# A backend or proxy that died (or was killed from outside) would turn the rest into error counts.
still_running() {
  kill -0 "$backend_pid" 2>/dev/null ||
    { cat "$tmp/backend."* >&2; die "the backend nginx ($backend_pid) has exited or was killed"; }
  kill -0 "$proxy_pid" 2>/dev/null || { cat "$tmp/"*.out >&2; die "the proxy ($proxy_pid) is gone"; }
}

declare -A result=() negotiated=()

# Stores "rate|p50 ms|p99 ms|errors|upstream conns|proxy CPU|per proxy-CPU-s" under
# "$case|$proxy|$round" and prints it. amount (requests, handshakes, or bytes when unit is MiB) was
# counted over micros of wall time in which the proxy used ticks of CPU; p50 and p99 are in µs,
# or "-" when the client does not measure them.
store_result() {
  local case=$1 proxy=$2 unit=$3 amount=$4 micros=$5 ticks=$6 errors=$7 p50=$8 p99=$9 upstream=${10}
  result["$case|$proxy|$round"]=$(awk -v a="$amount" -v us="$micros" -v t="$ticks" -v hz="$(getconf CLK_TCK)" \
    -v unit="$unit" -v e="$errors" -v p50="$p50" -v p99="$p99" -v up="$upstream" '
    function ms(us) { return (us == "-") ? "-" : sprintf("%.3f", us / 1000) }
    BEGIN {
      secs = us / 1e6; cpu = t / hz; if (unit == "MiB") a /= 1048576
      f = (unit == "MiB") ? "%.1f" : "%.0f"
      printf f "|%s|%s|%s|%d|%.0f%%|" f "\n", a / secs, ms(p50), ms(p99), e, up, 100 * cpu / secs,
        (cpu > 0) ? a / cpu : 0 }')
  echo "  $case: ${result[$case|$proxy|$round]}"
}

# Each case's row per proxy, from its rounds: the median of every figure, the sum of errors.
summarize() {
  local case proxy r rows
  for case in "${cases[@]}"; do
    for proxy in "${proxies[@]}"; do
      rows=""
      for r in $(seq "$rounds"); do rows+="${result[$case|$proxy|$r]:-}"$'\n'; done
      [ -n "${rows//$'\n'/}" ] || continue
      result["$case|$proxy"]=$(awk -F'|' '
        NF >= 7 { n++; for (i = 1; i <= 7; i++) v[i, n] = $i }
        function median(i,   k, j, t, a) {
          for (k = 1; k <= n; k++) a[k] = v[i, k] + 0
          for (k = 2; k <= n; k++) { t = a[k]; for (j = k - 1; j > 0 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
          return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        function ms(i) { return (v[i, 1] == "-") ? "-" : sprintf("%.3f", median(i)) }
        END {
          for (k = 1; k <= n; k++)
            if (split(v[4, k], e, /[ ,]+/) == 4 && e[2] == "sock") { s += e[1]; h += e[3] } else other = v[4, k]
          f = (v[1, 1] ~ /\./) ? "%.1f" : "%.0f"
          printf f "|%s|%s|%s|%d|%.0f%%|" f "\n", median(1), ms(2), ms(3),
            (other != "") ? other : s " sock, " h " http", median(5), median(6), median(7) }' <<<"$rows")
    done
  done
}

# The proxy's connections to the backend: how far it reuses them.
upstream_connections() {
  ss -Htn state established "( dport = :$backend_port or dport = :$backend_tls_port )" | wc -l
}

# One wrk run (after a 1 s warm-up) against origin (scheme://address:port); stores rate,
# latencies, errors, CPU under "$case|$proxy|$round".
measure() {
  local case=$1 proxy=$2 origin=$3 path=$4 conns=$5 unit=$6
  shift 6
  local url="$origin$path" before after wrk upstream out
  taskset -c "$load_cpu" wrk -t1 -c"$conns" -d1 "$@" "$url" >/dev/null # warm-up, not counted
  before=$(cpu_ticks "$proxy_pid")
  taskset -c "$load_cpu" wrk -t1 -c"$conns" -d"$duration" -s "$tmp/report.lua" "$@" "$url" \
    >"$tmp/wrk.out" &
  wrk=$!
  pids+=("$wrk")
  sleep "$(awk -v d="$duration" 'BEGIN { print d / 2 }')"
  upstream=$(upstream_connections) # half-way through
  wait "$wrk"
  forget "$wrk"
  after=$(cpu_ticks "$proxy_pid")
  out=$(grep '^RESULT' "$tmp/wrk.out") || { cat "$tmp/wrk.out" >&2; die "wrk gave no result"; }
  still_running
  read -r _ requests micros bytes socket_errors status_errors p50 p99 <<<"$out"
  [ "$unit" = MiB ] || bytes=$requests
  store_result "$case" "$proxy" "$unit" "$bytes" "$micros" $((after - before)) \
    "$socket_errors sock, $status_errors http" "$p50" "$p99" "$upstream"
}

# openssl s_time -www PATH sends "GET PATH HTTP/1.0" and an empty line; HTTP/1.0, so the proxy
# closes after answering. The path carries a Host header (tandem answers 400 without one), and a
# User-Agent that takes s_time's " HTTP/1.0" as the end of its value.
handshake_path=$'/ HTTP/1.0\r\nHost: localhost\r\nUser-Agent: openssl-s_time'
handshake_request="GET $handshake_path HTTP/1.0"$'\r\n\r\n'

# One request over HTTPS with openssl s_client, with the generated certificate as the only trust
# anchor, for both localhost and 127.0.0.1. Records what was negotiated and, in $response_bytes,
# the size of the answer to the handshake case's request (every answer to it has that size).
probe_tls() {
  local proxy=$1 out
  local client=(openssl s_client -connect "127.0.0.1:$https_port" -servername localhost
    -alpn http/1.1 -CAfile "$tmp/cert.pem" -verify_hostname localhost -verify_ip 127.0.0.1
    -verify_return_error -ign_eof)
  if ! out=$(printf %s "$handshake_request" | timeout 10 "${client[@]}" 2>&1) ||
    ! grep -qE '^HTTP/1\.[01] 200 ' <<<"$out" || ! grep -qx hello <<<"$out"; then
    echo "$out" >&2
    die "$proxy: no 200 hello over https on 127.0.0.1:$https_port"
  fi
  negotiated[$proxy]=$(awk '/^New, / { sub(/,$/, "", $2); v = $2 " " $NF }
    /^Server Temp Key:/ { k = $4; sub(/,$/, "", k) } /^ALPN protocol:/ { a = $3 }
    END { printf "%s %s, ALPN %s\n", v, k, a ? a : "none" }' <<<"$out")
  echo "  tls: ${negotiated[$proxy]}"
  response_bytes=$(printf %s "$handshake_request" | timeout 10 "${client[@]}" -quiet 2>/dev/null | wc -c)
}

# A full TLS handshake per request: $handshake_clients openssl s_time processes, each opening one
# connection at a time with a new session and sending $handshake_request. Not wrk: it keeps its
# TLS session across reconnects and resumes it (HAProxy and nginx count every wrk reconnect as a
# resumption), which skips the certificate and its signature. s_time measures no latency and
# stops at the first failed connection; an answer of another size (an error page) shows in the
# errors column.
measure_handshakes() {
  local case=$1 proxy=$2 i pid clients=() before after start end upstream handshakes bytes errors
  local s_time=(taskset -c "$load_cpu" openssl s_time -connect "127.0.0.1:$https_port" -new
    -www "$handshake_path")
  "${s_time[@]}" -time 1 >"$tmp/s_time.out" 2>&1 || # warm-up, not counted
    { cat "$tmp/s_time.out" >&2; die "openssl s_time failed against $proxy"; }
  before=$(cpu_ticks "$proxy_pid")
  start=$(date +%s%N)
  # s_time stops on a whole second, between -time and -time + 1 s after it started.
  for i in $(seq "$handshake_clients"); do
    "${s_time[@]}" -time "$duration" >"$tmp/s_time.$i.out" 2>&1 &
    clients+=("$!")
    pids+=("$!")
  done
  sleep "$(awk -v d="$duration" 'BEGIN { print d / 2 }')"
  upstream=$(upstream_connections) # half-way through
  for pid in "${clients[@]}"; do
    wait "$pid" || { cat "$tmp/s_time."*.out >&2; die "openssl s_time failed against $proxy"; }
    forget "$pid"
  done
  end=$(date +%s%N)
  after=$(cpu_ticks "$proxy_pid")
  still_running
  # "N connections in Ts; R connections/user sec, bytes read B", after a '*' per connection.
  read -r handshakes bytes < <(awk '/connections\/user sec, bytes read/ { sub(/^\**/, "")
    n += $1; b += $NF } END { print n + 0, b + 0 }' "$tmp/s_time."[0-9]*.out)
  errors="0 sock, 0 http"
  [ "$bytes" = $((handshakes * response_bytes)) ] || errors=$(awk -v b="$bytes" -v n="$handshakes" \
    -v e="$response_bytes" 'BEGIN { printf "answers average %.1f B, expected %d B", b / n, e }')
  store_result "$case" "$proxy" hs "$handshakes" $(((end - start) / 1000)) $((after - before)) \
    "$errors" - - "$upstream"
}

# Holds $idle connections open to the proxy's http port and records RSS before and after.
measure_idle() {
  local proxy=$1 before after helper
  sleep 1
  before=$(rss_kib "$proxy_pid")
  python3 "$here/idle_clients.py" "$http_port" "$idle" "$idle_send" >"$tmp/idle.out" 2>&1 &
  helper=$!
  pids+=("$helper")
  for _ in $(seq 600); do
    grep -q '^ready' "$tmp/idle.out" && break
    kill -0 "$helper" 2>/dev/null || { cat "$tmp/idle.out" >&2; die "idle helper failed"; }
    sleep 0.1
  done
  grep -q '^ready' "$tmp/idle.out" || die "idle helper not ready after 60 s"
  # Established is not accepted: wait until the proxy has drained its accept queue, then settle.
  for _ in $(seq 100); do
    [ "$(ss -Hltn "sport = :$http_port" | awk '{ s += $2 } END { print s + 0 }')" = 0 ] && break
    sleep 0.1
  done
  sleep 2
  after=$(rss_kib "$proxy_pid")
  kill -0 "$helper" 2>/dev/null || { cat "$tmp/idle.out" >&2; die "idle helper exited early"; }
  stop_process "$helper"
  still_running
  result["idle|$proxy"]=$(awk -v b="$before" -v a="$after" -v n="$idle" \
    'BEGIN { printf "%.1f MiB -> %.1f MiB (+%.2f KiB/conn)|%.3f\n", b / 1024, a / 1024, (a - b) / n, (a - b) / n }')
  echo "  idle: ${result[idle|$proxy]%|*}"
}

# One case against one proxy, in a fresh process of it.
run_case() {
  local case=$1 proxy=$2
  # nginx's locations and ifs don't run in order as rules do: no like-for-like config.
  [ "$case" = rules ] && [ "$proxy" = nginx ] && return 0
  echo "== $case, $proxy, round $round of $rounds"
  start_proxy "$proxy"
  case $case in
    keepalive) measure keepalive "$proxy" "http://127.0.0.1:$http_port" / "$connections" req ;;
    close) measure close "$proxy" "http://127.0.0.1:$http_port" / "$connections" req \
      -H 'Connection: close' ;;
    tcp) measure tcp "$proxy" "http://127.0.0.1:$tcp_port" / "$connections" req ;;
    1mib) measure 1mib "$proxy" "http://127.0.0.1:$http_port" /1m.bin 8 MiB ;;
    tlsnew)
      probe_tls "$proxy"
      measure_handshakes tlsnew "$proxy"
      ;;
    tlskeepalive) measure tlskeepalive "$proxy" "https://127.0.0.1:$https_port" / "$connections" req ;;
    rules) measure rules "$proxy" "http://127.0.0.1:$rules_port" / "$connections" req ;;
    tlsserver) measure tlsserver "$proxy" "http://127.0.0.1:$tls_server_port" / "$connections" req ;;
    idle) measure_idle "$proxy" ;;
  esac
  stop_process "$proxy_pid"
}

# Case by case, the proxies back to back, so that the runs compared are seconds apart rather than
# minutes: the neighbours' load on a shared machine drifts on that scale. The order rotates each
# round, so no proxy always runs first, or always right after another's connection-per-request
# run has left its sockets in TIME_WAIT (rounds in a multiple of the proxies' number give each
# the first place equally often).
run_round() {
  local case proxy first=$(((round - 1) % ${#proxies[@]}))
  local order=("${proxies[@]:first}" "${proxies[@]:0:first}")
  for case in "${cases[@]}"; do
    for proxy in "${order[@]}"; do run_case "$case" "$proxy"; done
  done
  # Once: memory does not move with the neighbours' load.
  if [ "$round" = 1 ]; then
    for proxy in "${order[@]}"; do run_case idle "$proxy"; done
  fi
}

# tandem's figure over HAProxy's: field $3 of case $2's results, on tandem's row ($1) only.
ratio() {
  local t=${result[$2|tandem]:-} h=${result[$2|haproxy]:-}
  [ "$1" = tandem ] && [ -n "$t" ] && [ -n "$h" ] || return 0
  awk -v t="$(cut -d'|' -f"$3" <<<"$t")" -v h="$(cut -d'|' -f"$3" <<<"$h")" \
    'BEGIN { if (h > 0) printf "%.2f", t / h }'
}

print_table() {
  local case proxy row label unit rate p50 p99 errors upstream cpu per idle_note tls_note=""
  echo
  echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
  echo "versions: $(if benchmarks haproxy; then haproxy -v | head -1 | cut -d' ' -f1-3; else echo "HAProxy not run"; fi), $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), tandem $tandem (tree $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "command: ${TANDEM:+TANDEM=$TANDEM }${TANDEM_EXTRA:+TANDEM_EXTRA=$TANDEM_EXTRA }$command_line"
  echo "proxy on CPU $proxy_cpu, the client (wrk -t1 or openssl s_time) and the nginx backend on CPU $load_cpu, ${duration}s per run"
  echo "figures: medians of $rounds rounds; in each, every case ran against the proxies back to back, each in a fresh process, in an order rotating by round (errors: summed)"
  echo "access logs: tandem $([ "$tandem_bare" = 1 ] && echo "off (and no metrics)" || echo "JSON to a file, metrics on"); HAProxy and nginx $([ "$peers_log" = 1 ] && echo "log every request and tcp session to a file" || echo "log nothing")"
  echo
  echo "| case | proxy | rate | p50 ms | p99 ms | errors | upstream conns | proxy CPU | per proxy-CPU-s | RSS | tandem/HAProxy rate | tandem/HAProxy per CPU-s |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  case $idle_send in
    1) idle_note=", one request each" ;;
    partial) idle_note=", each holding a partial request head" ;;
    *) idle_note="" ;;
  esac
  for case in keepalive close tcp 1mib idle tlsnew tlskeepalive rules tlsserver; do
    case $case in
      keepalive) label="HTTP keep-alive, -c$connections" unit="req/s" ;;
      close) label="HTTP new connection per request, -c$connections" unit="req/s" ;;
      tcp) label="TCP mode, keep-alive, -c$connections" unit="req/s" ;;
      1mib) label="1 MiB responses, -c8" unit="MiB/s" ;;
      idle) label="$idle idle connections" ;;
      tlsnew) label="HTTPS full TLS handshake per request, $handshake_clients s_time" unit="handshakes/s" ;;
      tlskeepalive) label="HTTPS keep-alive, -c$connections" unit="req/s" ;;
      rules) label="HTTP keep-alive, 20 rules (19 not matching), -c$connections" unit="req/s" ;;
      tlsserver) label="HTTP keep-alive, TLS to the server (verified), -c$connections" unit="req/s" ;;
    esac
    for proxy in "${proxies[@]}"; do
      row=${result[$case|$proxy]:-}
      [ -n "$row" ] || continue
      if [ "$case" = idle ]; then
        echo "| $label$idle_note | $proxy | | | | | | | | ${row%|*} | $(ratio "$proxy" idle 2) | |"
        continue
      fi
      IFS='|' read -r rate p50 p99 errors upstream cpu per <<<"$row"
      echo "| $label | $proxy | $rate $unit | $p50 | $p99 | $errors | $upstream | $cpu | $per ${unit%/s} | | $(ratio "$proxy" "$case" 1) | $(ratio "$proxy" "$case" 7) |"
    done
  done
  local with=${result[rules|tandem]:-} without=${result[keepalive|tandem]:-}
  if [ -n "$with" ] && [ -n "$without" ]; then
    echo
    echo "tandem with 20 rules over without, per CPU-s: $(awk -v w="$(cut -d'|' -f7 <<<"$with")" \
      -v o="$(cut -d'|' -f7 <<<"$without")" 'BEGIN { printf "%.3f", w / o }')"
  fi
  for proxy in "${proxies[@]}"; do tls_note+="${tls_note:+; }$proxy ${negotiated[$proxy]:-no TLS case run}"; done
  echo
  cat <<EOF
errors: wrk socket errors (connect/read/write/timeout) and non-2xx responses. upstream conns: the
proxy's connections to the backend half-way through the run (each run's proxy process is fresh,
warmed by a 1 s run before). proxy CPU: its utime+stime over the run's wall time (100% = CPU
$proxy_cpu saturated). RSS: VmRSS of the proxy's processes, in a fresh process,
before and after opening the idle connections; its ratio is of the growth per connection.
HTTPS: one ECDSA P-256 certificate, TLS 1.2 and 1.3 allowed, session tickets at each proxy's
default. Full handshakes: $handshake_clients openssl s_time -new processes on CPU $load_cpu, one
connection at a time each, "GET / HTTP/1.0" with Host (no latencies; an error ends the run, an
answer of another size shows in errors); not wrk, which resumes its TLS session on reconnects.
TLS to the server: the backend's own ECDSA P-256 certificate, signed by a CA generated at start,
verified by each proxy for the name localhost sent as SNI; its connections kept alive.
negotiated: $tls_note
background CPU use with nothing of ours running, 3 s before: $background_before; 3 s after: $(background_cpu 3)
EOF
}

main() {
  check_prerequisites
  background_before=$(background_cpu 3)
  echo "background CPU use, 3 s before starting: $background_before"
  grep -qE '([1-9][0-9]|100)%' <<<"$background_before" &&
    echo "warning: something else is using these CPUs (a build?): the figures will be noisy" >&2
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" # raising the hard limit needs CAP_SYS_RESOURCE
  [ "$(ulimit -n)" -gt $((idle + 1000)) ] || die "ulimit -n $(ulimit -n) is too low for --idle $idle"
  tmp=$(mktemp -d /tmp/tandem-load.XXXXXX)
  chmod 755 "$tmp" # nginx workers run unprivileged and read the 1 MiB file from here
  make_certificate
  write_configs
  start_pinned "$load_cpu" "$tmp/backend.out" nginx -e "$tmp/backend.log" -p "$tmp" \
    -c "$tmp/backend.conf" -g 'daemon off;'
  backend_pid=$started
  wait_port "$backend_port" "$backend_pid" "$tmp/backend.out"
  for round in $(seq "$rounds"); do run_round; done
  summarize
  print_table
}

main
