#!/usr/bin/env bash
# Agent benchmark (not a test), all on loopback in one run:
#  1. swap latency: POST /model/swap A→B (request to ready) against a cold load of B alone in a
#     fresh agent, with ~490 MB random-weight llama models so loading takes measurable time;
#  2. throughput of GET /model/status and GET /api/tags with wrk, against nginx serving the
#     same bytes as a static file (the peer: the fastest a loopback HTTP answer gets here).
# RUNS (default 3) repeats each latency; the best run counts.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap
dpkg -s wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
swift build -c release --product depot >&2
swift build -c release --product make-model >&2
DEPOT=$PWD/.build/release/depot
RUNS=${RUNS:-3}
WORK=$(mktemp -d "$PWD/.build/bench-agent.XXXXXX")
AGENT_PID="" NGINX_PID=""
cleanup() {
    [ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
    [ -n "$NGINX_PID" ] && kill -9 "$NGINX_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
export DEPOT_HOME=$WORK/store

for seed in 1 2; do .build/release/make-model "$WORK/m$seed.gguf" $seed medium; done
"$DEPOT" import "$WORK/m1.gguf" --name bench:a >/dev/null
"$DEPOT" import "$WORK/m2.gguf" --name bench:b >/dev/null
cat "$WORK/m1.gguf" "$WORK/m2.gguf" >/dev/null  # page cache warm for both

start_agent() {
    "$DEPOT" serve --port 0 --keep-alive never > "$WORK/agent.out" 2>"$WORK/agent.err" &
    AGENT_PID=$!
    for _ in $(seq 200); do grep -q "listening on" "$WORK/agent.out" 2>/dev/null && break; sleep 0.05; done
    PORT=$(grep -o '[0-9]*$' "$WORK/agent.out")
}
stop_agent() { kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""; }
swap() { curl -s -o /dev/null -w '%{time_total}' -X POST "http://127.0.0.1:$PORT/model/swap" -d "{\"model\": \"$1\"}"; }
best() { sort -g | head -1; }

cold=$(for _ in $(seq "$RUNS"); do start_agent; swap bench:b; echo; stop_agent; done | best)
start_agent
warm=$(for _ in $(seq "$RUNS"); do swap bench:a >/dev/null; swap bench:b; echo; done | best)

# The peer for throughput: nginx answering the same bytes from a file.
mkdir -p "$WORK/www" "$WORK/nginx"
curl -s "http://127.0.0.1:$PORT/model/status" > "$WORK/www/status.json"
curl -s "http://127.0.0.1:$PORT/api/tags" > "$WORK/www/tags.json"
NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
error_log $WORK/nginx/error.log; pid $WORK/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/b; proxy_temp_path $WORK/nginx/p; fastcgi_temp_path $WORK/nginx/f;
  uwsgi_temp_path $WORK/nginx/u; scgi_temp_path $WORK/nginx/s;
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
sleep 0.5
rate() { wrk -t2 -c16 -d5s "$1" | awk '/Requests\/sec/ {print $2}'; }
status_rate=$(rate "http://127.0.0.1:$PORT/model/status")
tags_rate=$(rate "http://127.0.0.1:$PORT/api/tags")
static_rate=$(rate "http://127.0.0.1:$NGINX_PORT/status.json")
static_tags_rate=$(rate "http://127.0.0.1:$NGINX_PORT/tags.json")

echo
echo "models: 2 × $(( $(stat -c %s "$WORK/m1.gguf") / 1000000 )) MB random llama (F32), best of $RUNS, $(nproc) cores"
printf '%-52s %8.3f s\n' "cold load of B in a fresh agent (swap request → ready)" "$cold"
printf '%-52s %8.3f s\n' "swap A → B (free A, load B; request → ready)" "$warm"
printf '%-52s %8.2fx\n' "swap A→B vs cold load of B" "$(python3 -c "print($cold / $warm)")"
echo
printf '%-52s %10s req/s\n' "GET /model/status (wrk -t2 -c16 -d5s)" "$status_rate"
printf '%-52s %10s req/s\n' "GET /api/tags" "$tags_rate"
printf '%-52s %10s req/s\n' "nginx, same bytes as a static file (status)" "$static_rate"
printf '%-52s %10s req/s\n' "nginx, same bytes as a static file (tags)" "$static_tags_rate"
printf '%-52s %8.2fx\n' "/model/status vs nginx static" "$(python3 -c "print($status_rate / $static_rate)")"
printf '%-52s %8.2fx\n' "/api/tags vs nginx static" "$(python3 -c "print($tags_rate / $static_tags_rate)")"
