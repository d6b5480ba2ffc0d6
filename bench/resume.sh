#!/usr/bin/env bash
# Resume benchmark (not a test): what a SIGKILL costs a download. nginx on loopback serves one
# file of SIZE_MIB MiB, once with `limit_rate 1m` a connection and once without; `depot
# pull --sha256` is SIGKILLed at KILLS (10) random points and then run to the end (SIZE_MIB
# defaults to 1024 so the kills land before the end). For each
# kill: what nginx had sent, what the journal held afterwards, and the bytes that must be
# fetched again, against the bound max(8 MiB, what arrived in the last 2 s of that run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap
swift build -c release --product depot >&2
DEPOT=$PWD/.build/release/depot
SIZE_MIB=${SIZE_MIB:-1024} KILLS=${KILLS:-10}
WORK=$(mktemp -d "$PWD/.build/bench-resume.XXXXXX")
NGINX_PID=""
cleanup() { [ -n "$NGINX_PID" ] && kill -9 "$NGINX_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/www" "$WORK/nginx/logs"
python3 bench/write-gguf.py "$WORK/www/model.gguf" "$SIZE_MIB"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
error_log $WORK/nginx/logs/error.log; pid $WORK/nginx/nginx.pid;
events { worker_connections 256; }
http {
  log_format bytes '\$request_uri \$body_bytes_sent'; access_log $WORK/nginx/logs/access.log bytes;
  sendfile on;
  client_body_temp_path $WORK/nginx/b; proxy_temp_path $WORK/nginx/p; fastcgi_temp_path $WORK/nginx/f;
  uwsgi_temp_path $WORK/nginx/u; scgi_temp_path $WORK/nginx/s;
  server { listen 127.0.0.1:$PORT; root $WORK/www; location /slow/ { alias $WORK/www/; limit_rate 1m; } }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
for _ in $(seq 50); do curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$PORT/model.gguf" && break; sleep 0.1; done

python3 - "$DEPOT" "$WORK" "$PORT" "$KILLS" <<'PY'
import hashlib, json, os, random, shutil, signal, subprocess, sys, time
depot, work, port, kills = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
path = work + "/www/model.gguf"
size = os.path.getsize(path)
digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
log = work + "/nginx/logs/access.log"

def sent(prefix):
    """Body bytes nginx sent for requests under `prefix`, once it has logged them all (a
    rate-limited connection is logged only when nginx next tries to write to it)."""
    lines, quiet = -1, 0
    while quiet < 3:
        time.sleep(0.5)
        current = open(log).read().splitlines()
        quiet = quiet + 1 if len(current) == lines else 0
        lines = len(current)
    return sum(int(line.split()[1]) for line in current if line.split()[0].startswith(prefix))

def journaled(store):
    out = subprocess.run([depot, "jobs", "--json", "--store", store], capture_output=True, text=True).stdout
    jobs = json.loads(out) if out.strip() else []
    return jobs[0]["completedBytes"] if jobs else 0

for name, prefix, limit in [("limit_rate 1m a connection", "/slow/", (2.0, 6.0)), ("loopback, no limit", "/model", (0.1, 0.25))]:
    store = work + "/store-" + prefix.strip("/")
    shutil.rmtree(store, ignore_errors=True)
    url = "http://127.0.0.1:%d%smodel.gguf" % (port, prefix if prefix.endswith("/") else "/")
    open(log, "w").close()
    rows, lost_before, over = [], 0, 0
    for kill in range(kills):
        before = sent(prefix)
        process = subprocess.Popen([depot, "pull", url, "--sha256", digest, "--store", store],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait = random.uniform(*limit)
        time.sleep(wait)
        if process.poll() is not None:
            break  # the download finished before this kill
        process.send_signal(signal.SIGKILL)
        process.wait()
        after = sent(prefix)
        held = journaled(store)
        lost = after - held - lost_before
        lost_before += lost
        rate = (after - before) / wait
        bound = max(8 << 20, int(2 * rate))
        over += lost > bound
        rows.append((kill + 1, wait, after - before, held, lost, bound))
    # The rest at full speed (the journal is keyed by the hash: any address continues it).
    done = subprocess.run([depot, "pull", "http://127.0.0.1:%d/model.gguf" % port, "--sha256", digest, "--store", store],
                          capture_output=True)
    stored = os.path.exists(store + "/blobs/sha256/" + digest)
    print("\n%s: %d MiB, %d kills" % (name, size >> 20, len(rows)))
    print("| kill | after | sent this run | journal holds | fetched again | bound | within |")
    print("|---|---|---|---|---|---|---|")
    for kill, wait, run, held, lost, bound in rows:
        print("| %d | %.2f s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %s |" % (
            kill, wait, run / 2**20, held / 2**20, lost / 2**20, bound / 2**20, "yes" if lost <= bound else "NO"))
    print("completed: exit %d, verified blob stored: %s; fetched again over all kills: %.1f MiB; kills over the bound: %d"
          % (done.returncode, stored, lost_before / 2**20, over))
PY
