#!/usr/bin/env bash
# Federation benchmark (not a test): 16 coordinators on loopback, peered as a 4x4 torus (each
# has 4 peers, every coordinator within 4 hops), with 1,000 simulated agents heartbeating to
# them. Measures
#  1. convergence: an agent starts a new model; how long until all 15 other coordinators list
#     its coordinator in /mesh/capabilities?model= (8 trials, each from another origin);
#  2. gossip bytes sent per coordinator per round (and per minute at the default 60 s
#     interval), against a full mesh in which every coordinator sends its own summary straight
#     to the 15 others (the fewest bytes any scheme can move, at the cost of 240 peerings).
# GOSSIP (seconds, default 1) is the gossip interval used here; the default in use is 60.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap
swift build -c release --product depot >&2
swift build -c release --product mesh-agents >&2
DEPOT=$PWD/.build/release/depot
WORK=$(mktemp -d "$PWD/.build/bench-federation.XXXXXX")
GOSSIP=${GOSSIP:-1}
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

COUNT=16 SIDE=4
read -r -a PORTS <<< "$(python3 -c "
import socket
socks = [socket.socket() for _ in range($COUNT)]
for s in socks: s.bind(('127.0.0.1', 0))
print(' '.join(str(s.getsockname()[1]) for s in socks))")"
KEYS=()
for i in $(seq 0 $((COUNT - 1))); do
    KEYS+=("$("$DEPOT" coordinator --print-identity --state "$WORK/c$i" | cut -d' ' -f2)")
done
for i in $(seq 0 $((COUNT - 1))); do
    row=$((i / SIDE)) col=$((i % SIDE))
    peers=()
    for j in $(( ((row + 1) % SIDE) * SIDE + col )) $(( ((row + SIDE - 1) % SIDE) * SIDE + col )) \
             $(( row * SIDE + (col + 1) % SIDE )) $(( row * SIDE + (col + SIDE - 1) % SIDE )); do
        peers+=(--peer "http://127.0.0.1:${PORTS[$j]}#${KEYS[$j]}")
    done
    "$DEPOT" coordinator --port "${PORTS[$i]}" --state "$WORK/c$i" --heartbeat-interval 3 \
        --gossip-interval "$GOSSIP" "${peers[@]}" > "$WORK/c$i.out" 2>&1 &
    PIDS+=($!)
done
for i in $(seq 0 $((COUNT - 1))); do
    for _ in $(seq 200); do grep -q "listening on" "$WORK/c$i.out" 2>/dev/null && break; sleep 0.05; done
done

# The simulated agents register with their own keys: agent k with coordinator k % 16.
for i in $(seq 0 $((COUNT - 1))); do
    .build/release/mesh-agents "http://127.0.0.1:${PORTS[$i]}" $(( (1000 - i + COUNT - 1) / COUNT )) > "$WORK/agents-$i.txt"
done

python3 - "$GOSSIP" "$WORK" "${PORTS[@]}" <<'PY'
import http.client, json, random, statistics, sys, threading, time

gossip = float(sys.argv[1])
work = sys.argv[2]
ports = [int(p) for p in sys.argv[3:]]
AGENTS, MODELS = 1000, ["qwen2.5-coder:1.5b", "qwen2.5-coder:7b", "llama3.2:3b", "phi4:14b", "gemma3:4b"]
SIZES = {"qwen2.5-coder:1.5b": 1.5, "qwen2.5-coder:7b": 7, "llama3.2:3b": 3, "phi4:14b": 14, "gemma3:4b": 4}
model_of = {k: MODELS[k % len(MODELS)] for k in range(AGENTS)}
lock = threading.Lock()
# Agent k's id, session credential and registered address, from its registration with
# coordinator k % 16.
identity = {}
for index in range(len(ports)):
    lines = open(f"{work}/agents-{index}.txt").read().splitlines()
    mine = [k for k in range(AGENTS) if k % len(ports) == index]
    for k, line in zip(mine, lines):
        _, agent_id, credential, address = line.split()
        identity[k] = (agent_id, credential, address)

def body(k):
    with lock: model = model_of[k]
    return json.dumps({"protocolVersion": 2, "agentId": identity[k][0], "platform": "linux", "freeMemoryMB": 16384,
                       "address": identity[k][2], "activeModel": model,
                       "activeModelParamSize": SIZES.get(model, 1.0), "modelSwapInProgress": False,
                       "currentLoad": k % 3, "installedModels": []})

def call(connection, method, path, payload=None, agent=None):
    headers = {"Content-Type": "application/json"} if payload else {}
    if agent is not None: headers["Authorization"] = "Bearer " + identity[agent][1]
    connection.request(method, path, payload, headers)
    response = connection.getresponse()
    return response.status, response.read()

stop = threading.Event()
def heartbeats(index):
    # The agents of one coordinator, each beating once a second.
    connection = http.client.HTTPConnection("127.0.0.1", ports[index])
    mine = [k for k in range(AGENTS) if k % len(ports) == index]
    while not stop.is_set():
        started = time.monotonic()
        for k in mine: call(connection, "POST", "/heartbeat", body(k), k)
        stop.wait(max(0, 1 - (time.monotonic() - started)))

threads = [threading.Thread(target=heartbeats, args=(i,), daemon=True) for i in range(len(ports))]
for t in threads: t.start()
connections = [http.client.HTTPConnection("127.0.0.1", p) for p in ports]
ids = [json.loads(call(c, "GET", "/mesh/summary")[1])["coordinatorId"] for c in connections]
time.sleep(4 * gossip + 2)

def count_at(index, model, origin):
    status, text = call(connections[index], "GET", f"/mesh/capabilities?model={model}")
    return next((m["agentCount"] for m in json.loads(text) if m["coordinatorId"] == origin), 0)

def converge(trial, model_for):
    """One agent swaps; seconds until every other coordinator shows its coordinator's new count."""
    origin = (trial * 5) % len(ports)
    # A random phase against the origin's gossip rounds (its early sends in earlier trials set
    # their phase, and trials take about the same time each).
    time.sleep(random.uniform(0, gossip))
    agent = origin  # agent k heartbeats to coordinator k % 16
    with lock: model_of[agent] = model_for(agent)
    call(connections[origin], "POST", "/heartbeat", body(agent), agent)  # an agent beats at once on a swap
    start = time.monotonic()
    model = model_of[agent]
    expected = json.loads(call(connections[origin], "GET", "/mesh/summary")[1])["modelAvailability"][model]["agentCount"]
    pending, times = set(range(len(ports))) - {origin}, []
    while pending and time.monotonic() - start < 10 * gossip + 10:
        for index in sorted(pending):
            if count_at(index, model, ids[origin]) == expected:
                pending.discard(index)
                times.append(time.monotonic() - start)
        time.sleep(0.005)
    if pending: sys.exit(f"trial {trial}: coordinators {sorted(pending)} never learned of {model} at {ids[origin]}")
    with lock: model_of[agent] = MODELS[agent % len(MODELS)]
    call(connections[origin], "POST", "/heartbeat", body(agent), agent)
    time.sleep(gossip * 1.5)
    return times

# 1. Convergence: a model new to its coordinator (announced early), then a model it already
#    had (one more agent: news that waits for the next round).
new_model = [converge(trial, lambda agent: f"probe-{trial}") for trial in range(8)]
known_model = [converge(trial, lambda agent: MODELS[(agent + 1) % len(MODELS)]) for trial in range(8)]

# 2. Bytes in a steady window (no model changes).
def traffic():
    return [json.loads(call(c, "GET", "/mesh/gossip/stats")[1]) for c in connections]
time.sleep(2 * gossip)
before, t0 = traffic(), time.monotonic()
time.sleep(max(20, 10 * gossip))
after, elapsed = traffic(), time.monotonic() - t0
rounds = elapsed / gossip
sent = [a["traffic"]["sentBytes"] - b["traffic"]["sentBytes"] for a, b in zip(after, before)]
posts = [a["traffic"]["sent"] - b["traffic"]["sent"] for a, b in zip(after, before)]
failed = sum(a["traffic"]["failed"] - b["traffic"]["failed"] for a, b in zip(after, before))
dups = sum(a["rejected"].get("duplicate", 0) - b["rejected"].get("duplicate", 0) for a, b in zip(after, before))
other = sum(sum(v for k, v in a["rejected"].items() if k != "duplicate") for a in after) - \
        sum(sum(v for k, v in b["rejected"].items() if k != "duplicate") for b in before)
stop.set()
per_round = statistics.mean(sent) / rounds
posts_per_round = statistics.mean(posts) / rounds
message = per_round / posts_per_round
full_mesh = message * (len(ports) - 1)
agents = sum(json.loads(call(c, "GET", "/mesh/summary")[1])["agentCount"] for c in connections)

print()
print(f"16 coordinators (4x4 torus, 4 peers each), {agents} simulated agents online, gossip every {gossip:g} s, loopback, 2 cores")
for label, trials in [("a model new there (sent early)", new_model), ("one more agent on a model it had", known_model)]:
    worst = [max(times) for times in trials]
    print(f"{'convergence, ' + label + ': all 15 others know':<66} median {statistics.median(worst):.3f} s, worst {max(worst):.3f} s")
    print(f"{'  in gossip intervals: median / worst':<66} {statistics.median(worst) / gossip:.2f} / {max(worst) / gossip:.2f}")
print(f"{'gossip POSTs sent per coordinator per round (mean)':<66} {posts_per_round:.1f}")
print(f"{'bytes sent per coordinator per round (bodies; mean / max)':<66} {per_round:,.0f} / {max(sent) / rounds:,.0f}")
print(f"{'  per minute at the default 60 s interval':<66} {per_round:,.0f} B/min")
print(f"{'  per minute at this run interval':<66} {per_round * 60 / gossip:,.0f} B/min")
print(f"{'full mesh: each sends its own summary to the 15 others, per round':<66} {full_mesh:,.0f}")
print(f"{'torus flooding vs full mesh, bytes':<66} {per_round / full_mesh:.2f}x")
print(f"{'duplicates refused in the window / other refusals / failed POSTs':<66} {dups} / {other} / {failed}")
PY
