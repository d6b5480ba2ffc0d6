#!/usr/bin/env bash
# Mesh benchmark (not a test), on loopback in one run:
#  1. heartbeat ingestion: 10,000 agents, each with its own Ed25519 key, register (a signed
#     nonce each, bench/mesh-agents); then wrk POSTs their heartbeats, each with its agent's
#     session credential, to the coordinator, against nginx answering the same POSTs with a
#     fixed 200 (the peer: the fastest a loopback HTTP POST is answered here);
#  2. GET /mesh/capabilities?model= latency (p50/p99) with those 10,000 agents registered,
#     beside nginx's p99 for a fixed answer on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap
dpkg -s wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
swift build -c release --product depot >&2
swift build -c release --product mesh-agents >&2
DEPOT=$PWD/.build/release/depot
WORK=$(mktemp -d "$PWD/.build/bench-mesh.XXXXXX")
COORDINATOR_PID="" NGINX_PID=""
cleanup() {
    [ -n "$COORDINATOR_PID" ] && kill -9 "$COORDINATOR_PID" 2>/dev/null
    [ -n "$NGINX_PID" ] && kill -9 "$NGINX_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

"$DEPOT" coordinator --port 0 --state "$WORK/coordinator" --heartbeat-interval 3600 --store "$WORK/store" > "$WORK/out" 2>&1 &
COORDINATOR_PID=$!
for _ in $(seq 200); do grep -q "listening on" "$WORK/out" 2>/dev/null && break; sleep 0.05; done
PORT=$(grep -o '[0-9]*$' "$WORK/out")
started=$(date +%s.%N)
.build/release/mesh-agents "http://127.0.0.1:$PORT" 10000 > "$WORK/agents.txt"
registration_seconds=$(python3 -c "import time; print(round(time.time() - $started, 2))")

cat > "$WORK/heartbeat.lua" <<LUA
local agents = {}
for line in io.lines("$WORK/agents.txt") do
  local index, id, credential = line:match("(%d+) (%x+) (%S+)")
  agents[#agents + 1] = {tonumber(index), id, credential}
end
request = function()
  local agent = agents[math.random(1, #agents)]
  local index = agent[1]
  local model = (index % 2 == 0) and "qwen2.5-coder:1.5b" or "qwen2.5-coder:7b"
  local body = string.format('{"protocolVersion":2,"agentId":"%s","platform":"linux","freeMemoryMB":8192,' ..
    '"address":"http://10.0.%d.%d:4302","activeModel":"%s","activeModelParamSize":1.5,"modelSwapInProgress":false,' ..
    '"currentLoad":%d,"installedModels":[]}', agent[2], index % 250, index % 200, model, index % 4)
  return wrk.format("POST", "/heartbeat", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. agent[3]}, body)
end
LUA

NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
error_log $WORK/nginx/error.log; pid $WORK/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/b; proxy_temp_path $WORK/nginx/p; fastcgi_temp_path $WORK/nginx/f;
  uwsgi_temp_path $WORK/nginx/u; scgi_temp_path $WORK/nginx/s;
  server { listen 127.0.0.1:$NGINX_PORT; location / { return 200 '{"status":"ok"}'; } }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
sleep 0.5

rate() { awk '/Requests\/sec/ {print $2}'; }
# Alternated, three rounds each: the machine is shared, so one run is not a figure.
depot_rates=() nginx_rates=()
for _ in 1 2 3; do
    depot_run=$(wrk -t2 -c16 -d8s -s "$WORK/heartbeat.lua" "http://127.0.0.1:$PORT")
    if echo "$depot_run" | grep -q "Non-2xx"; then echo "heartbeats were refused: $depot_run" >&2; exit 1; fi
    depot_rates+=("$(echo "$depot_run" | rate)")
    nginx_rates+=("$(wrk -t2 -c16 -d8s -s "$WORK/heartbeat.lua" "http://127.0.0.1:$NGINX_PORT" | rate)")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
depot_rate=$(median "${depot_rates[@]}") nginx_rate=$(median "${nginx_rates[@]}")
agents=$(curl -s "http://127.0.0.1:$PORT/mesh/summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["agentCount"])')
latency=$(wrk -t1 -c1 -d5s --latency "http://127.0.0.1:$PORT/mesh/capabilities?model=qwen2.5-coder:7b")
p50=$(echo "$latency" | awk '$1 == "50%" {print $2}')
p99=$(echo "$latency" | awk '$1 == "99%" {print $2}')
nginx_latency=$(wrk -t1 -c1 -d5s --latency "http://127.0.0.1:$NGINX_PORT/mesh/capabilities?model=qwen2.5-coder:7b")
nginx_p99=$(echo "$nginx_latency" | awk '$1 == "99%" {print $2}')

echo
echo "coordinator on loopback, $(nproc) cores; signed heartbeats from 10,000 registered agents (wrk -t2 -c16 -d8s, medians of 3 alternated runs)"
printf '%-58s %10s s\n' "10,000 registrations (challenge + Ed25519-signed nonce)" "$registration_seconds"
printf '%-58s %10s /s  (runs: %s)\n' "depot coordinator: POST /heartbeat (credential, write-behind)" "$depot_rate" "${depot_rates[*]}"
printf '%-58s %10s /s  (runs: %s)\n' "nginx: the same POSTs answered with a fixed 200" "$nginx_rate" "${nginx_rates[*]}"
printf '%-58s %8.2fx\n' "depot vs nginx" "$(python3 -c "print($depot_rate / $nginx_rate)")"
printf '%-58s %10s\n' "agents registered" "$agents"
printf '%-58s %10s / %s\n' "GET /mesh/capabilities?model= latency p50 / p99 (1 conn)" "$p50" "$p99"
printf '%-58s %10s\n' "nginx: the same GET answered with a fixed 200, p99" "$nginx_p99"
