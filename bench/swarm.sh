#!/usr/bin/env bash
# Swarm benchmark (not a test; needs root for a network namespace and tc). One model of
# SIZE_MIB (256) MiB on a CDN (nginx in its own network namespace, its total egress capped
# by tc to RATE, 400mbit); AGENTS (8) agents on loopback pull it at once, cold. Alternated,
# RUNS (3) times each in one run:
#   swarm     depot agents with a coordinator, seeding (--seed): peers and the CDN together;
#   cdn-only  the same agents without a coordinator: each pulls every byte from the CDN;
#   libtorrent  AGENTS libtorrent sessions, the CDN as their web seed, each other as peers.
# Prints medians: CDN egress / model size, p50 and p100 completion, p100 against cdn-only,
# bytes wasted (received beyond AGENTS copies: bad or duplicate pieces), and for the median
# swarm run each agent's bytes from the CDN and sent to peers, and its upload rate against
# its cap (SEED_RATE, passed to --seed-rate; default none). MODES picks rounds (default all
# three); KEEP_LOGS=DIR keeps each depot round's logs and the CDN's access log (the time,
# Range and bytes of every request) there. libtorrent runs in Debian's
# /usr/bin/python3, where python3-libtorrent is.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap
[ "$(id -u)" = 0 ] || { echo "bench/swarm.sh needs root (a network namespace and tc for the CDN's link)" >&2; exit 1; }
swift build -c release --product depot >&2
DEPOT=$PWD/.build/release/depot
SIZE_MIB=${SIZE_MIB:-256} AGENTS=${AGENTS:-8} RATE=${RATE:-400mbit} RUNS=${RUNS:-3} SEED_RATE=${SEED_RATE:-}
MODES=${MODES:-swarm cdn-only libtorrent} KEEP_LOGS=${KEEP_LOGS:-}
WORK=$(mktemp -d "$PWD/.build/bench-swarm.XXXXXX")
NS=depot-cdn-$$ HOST_LINK=dcdn$$h CDN_LINK=dcdn$$c
CDN_IP=10.231.0.2
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip link del "$HOST_LINK" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The CDN: its own namespace behind a veth pair, everything it sends through one tbf qdisc.
ip netns add "$NS"
ip link add "$HOST_LINK" type veth peer name "$CDN_LINK"
ip link set "$CDN_LINK" netns "$NS"
ip addr add 10.231.0.1/24 dev "$HOST_LINK" && ip link set "$HOST_LINK" up
ip netns exec "$NS" ip addr add "$CDN_IP/24" dev "$CDN_LINK"
ip netns exec "$NS" ip link set "$CDN_LINK" up
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" tc qdisc add dev "$CDN_LINK" root tbf rate "$RATE" burst 256kb latency 200ms

mkdir -p "$WORK/www" "$WORK/nginx/logs"
python3 bench/write-gguf.py "$WORK/www/big.gguf" "$SIZE_MIB"
"$DEPOT" catalog pieces "$WORK/www/big.gguf" --layer > "$WORK/pieces.json"
# A catalog per agent, each with its own download address (?a=N), so the CDN's log tells
# who fetched what; all carry the BEP 52 root and piece layer.
python3 - "$WORK" "$AGENTS" "$CDN_IP" <<'PY'
import hashlib, json, os, sys
work, agents, cdn = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pieces = json.load(open(work + "/pieces.json"))
digest = hashlib.sha256()
with open(work + "/www/big.gguf", "rb") as f:
    for block in iter(lambda: f.read(1 << 24), b""):
        digest.update(block)
for index in list(range(agents)):
    entry = {"modelId": "big:swarm", "displayName": "big", "paramSize": 0.001, "quantization": "F32",
             "fileSizeBytes": pieces["fileSize"], "downloadUrl": "http://%s:8080/big.gguf?a=%d" % (cdn, index),
             "checksumSha256": digest.hexdigest(), "platform": "all", "languages": ["en"], "minMemoryMB": 1,
             "piecesRoot": pieces["piecesRoot"], "pieceSize": pieces["pieceSize"],
             "pieces": {"pieceSize": pieces["pieceSize"], "scheme": "bep52", "sha256": pieces["pieceLayer"]}}
    json.dump({"version": 1, "models": [entry]}, open("%s/www/catalog-%d.json" % (work, index), "w"))
PY
SIZE=$(stat -c %s "$WORK/www/big.gguf")
PIECE_SIZE=$(python3 -c "import json; print(json.load(open('$WORK/pieces.json'))['pieceSize'])")

cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
error_log $WORK/nginx/error.log; pid $WORK/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  log_format bytes '\$msec "\$http_range" \$request \$status \$body_bytes_sent';
  access_log $WORK/nginx/logs/access.log bytes;
  client_body_temp_path $WORK/nginx/b; proxy_temp_path $WORK/nginx/p; fastcgi_temp_path $WORK/nginx/f;
  uwsgi_temp_path $WORK/nginx/u; scgi_temp_path $WORK/nginx/s;
  sendfile on;
  server { listen $CDN_IP:8080; root $WORK/www; }
}
CONF
ip netns exec "$NS" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null "http://$CDN_IP:8080/catalog-0.json" && break; sleep 0.1; done

# Waits for "listening on" in a log; prints the port.
port_of() {
    for _ in $(seq 300); do grep -q "listening on" "$1" 2>/dev/null && break; sleep 0.05; done
    grep -o 'listening on http://[0-9.]*:[0-9]*' "$1" | grep -o '[0-9]*$'
}

# One round of depot agents: swarm (with a coordinator, seeding) or cdn-only. Appends a
# JSON line to $WORK/results.
depot_round() {
    local mode=$1 run=$2 coordinator="" ports=() agent_pids=() round=$WORK/round
    rm -rf "$round" && mkdir -p "$round"
    if [ "$mode" = swarm ]; then
        "$DEPOT" coordinator --port 0 --state "$round/coordinator" --heartbeat-interval 1 --store "$round/coordinator-store" > "$round/coordinator.log" 2>&1 &
        PIDS+=($!) agent_pids+=($!)
        coordinator="http://127.0.0.1:$(port_of "$round/coordinator.log")"
    fi
    for index in $(seq 0 $((AGENTS - 1))); do
        local extra=()
        if [ "$mode" = swarm ]; then
            extra=(--coordinator "$coordinator" --heartbeat-interval 1 --seed --seed-uploads 16)
            [ -n "$SEED_RATE" ] && extra+=(--seed-rate "$SEED_RATE")
        fi
        "$DEPOT" serve --port 0 --store "$round/agent-$index" --catalog "http://$CDN_IP:8080/catalog-$index.json" "${extra[@]}" \
            > "$round/agent-$index.log" 2>&1 &
        PIDS+=($!) agent_pids+=($!)
    done
    for index in $(seq 0 $((AGENTS - 1))); do ports+=("$(port_of "$round/agent-$index.log")"); done
    if [ "$mode" = swarm ]; then
        for _ in $(seq 200); do
            online=$(curl -sf "$coordinator/mesh/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["onlineAgents"])' || echo 0)
            [ "$online" -ge "$AGENTS" ] && break
            sleep 0.1
        done
    fi
    : > "$WORK/nginx/logs/access.log"
    python3 - "$round" "$mode" "$run" "$SIZE" "$WORK/nginx/logs/access.log" "${ports[@]}" >> "$WORK/results" <<'PY'
import json, re, sys, time, urllib.request
round_dir, mode, run, size, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ports = sys.argv[6:]
def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%s%s" % (port, path), timeout=10) as answer:
        return answer.read().decode()
started = time.time()
for port in ports:
    request = urllib.request.Request("http://127.0.0.1:%s/jobs" % port, data=b'{"model": "big:swarm"}',
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()
finished = [None] * len(ports)
while None in finished and time.time() - started < 900:
    for index, port in enumerate(ports):
        if finished[index] is None and '"big:swarm"' in get(port, "/api/tags"):
            finished[index] = time.time() - started
    time.sleep(0.1)
def metric(port, name):
    line = next((l for l in get(port, "/metrics").splitlines() if l.startswith(name + " ")), None)
    return int(float(line.split()[1])) if line else 0
cdn = [0] * len(ports)
for line in open(log):
    match = re.search(r"big\.gguf\?a=(\d+) HTTP/[0-9.]+ \d+ (\d+)$", line.strip())
    if match:
        cdn[int(match.group(1))] += int(match.group(2))
print(json.dumps({"mode": mode, "run": run, "seconds": finished, "cdn": cdn,
                  "sent": [metric(port, "depot_seed_bytes_total") for port in ports]}))
PY
    for pid in "${agent_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${agent_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$KEEP_LOGS" ]; then
        mkdir -p "$KEEP_LOGS/$mode-$run" && cp "$round"/*.log "$WORK/nginx/logs/access.log" "$KEEP_LOGS/$mode-$run/"
    fi
    rm -rf "$round"
}

libtorrent_round() {
    local run=$1 round=$WORK/round
    rm -rf "$round" && mkdir -p "$round"
    : > "$WORK/nginx/logs/access.log"
    /usr/bin/python3 bench/swarm-libtorrent.py "$WORK/www/big.gguf" "$PIECE_SIZE" "http://$CDN_IP:8080/big.gguf" "$AGENTS" "$round" 900 > "$round/out.json"
    sleep 2  # nginx logs a response once it notices the closed connection
    python3 - "$round/out.json" "$run" "$AGENTS" "$WORK/nginx/logs/access.log" >> "$WORK/results" <<'PY'
import json, re, sys
outcome, run, agents, log = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cdn = [0] * agents
for line in open(log):
    # libtorrent appends the file name to a web seed's address, after our query.
    match = re.search(r"big\.gguf\?a=lt(\d+)\S* HTTP/[0-9.]+ \d+ (\d+)$", line.strip())
    if match:
        cdn[int(match.group(1))] += int(match.group(2))
print(json.dumps({"mode": "libtorrent", "run": run, "seconds": outcome["seconds"], "cdn": cdn, "sent": outcome["uploaded"]}))
PY
    rm -rf "$round"
}

echo "model $SIZE bytes in pieces of $PIECE_SIZE; $AGENTS agents; CDN egress capped at $RATE; $RUNS runs each, alternated" >&2
for run in $(seq 1 "$RUNS"); do
    for mode in $MODES; do
        case $mode in
            libtorrent) libtorrent_round "$run" ;;
            *) depot_round "$mode" "$run" ;;
        esac
    done
done

python3 - "$WORK/results" "$SIZE" "$AGENTS" "${SEED_RATE:-none}" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
size, agents, cap = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def figures(row):
    times = [t for t in row["seconds"] if t is not None]
    done = len(times) == len(row["seconds"])
    cdn = sum(row["cdn"])
    return {"p50": statistics.median(times) if times else float("nan"), "p100": max(times) if done else float("inf"),
            "egress": cdn / size, "wasted": cdn + sum(row["sent"]) - agents * size, "done": len(times)}
modes = [mode for mode in ["swarm", "cdn-only", "libtorrent"] if any(row["mode"] == mode for row in rows)]
table = {}
for mode in modes:
    runs = [figures(row) for row in rows if row["mode"] == mode]
    table[mode] = {key: statistics.median([run[key] for run in runs]) for key in ["p50", "p100", "egress", "wasted", "done"]}
    table[mode]["runs"] = runs
baseline = table["cdn-only"]["p100"] if "cdn-only" in table else float("nan")
print("| %d agents, %d MiB | CDN egress / size | p50 | p100 | p100 / cdn-only | wasted | finished |" % (agents, size >> 20))
print("|---|---|---|---|---|---|---|")
for mode in modes:
    row = table[mode]
    print("| %s | %.2fx | %.1f s | %.1f s | %.2fx | %.1f MiB | %d/%d |" % (
        mode, row["egress"], row["p50"], row["p100"], row["p100"] / baseline, row["wasted"] / 2**20, row["done"], agents))
print("each run (egress, p100): " + "; ".join("%s %s" % (mode, ", ".join("%.2fx %.1fs" % (r["egress"], r["p100"]) for r in table[mode]["runs"])) for mode in modes))
swarm = sorted([row for row in rows if row["mode"] == "swarm"], key=lambda row: figures(row)["p100"])
if not swarm:
    sys.exit(0)
median = swarm[len(swarm) // 2]
print("\nswarm run %d, per agent (upload cap: %s):" % (median["run"], cap))
print("| agent | done after | from the CDN | from peers (size − CDN) | sent to peers | upload rate |")
print("|---|---|---|---|---|---|")
for index in range(agents):
    seconds = median["seconds"][index]
    from_cdn = median["cdn"][index]
    rate = median["sent"][index] / max(figures(median)["p100"], 1e-9)
    print("| %d | %s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MB/s |" % (
        index, "%.1f s" % seconds if seconds is not None else "never", from_cdn / 2**20, max(size - from_cdn, 0) / 2**20,
        median["sent"][index] / 2**20, rate / 1e6))
PY
