#!/usr/bin/env bash
# Download benchmark (not a test). One file served by nginx on loopback, page cache warm;
# in the same run: depot pull (verified against --sha256, durable) against curl -o
# (unverified), curl -o && sync (the durable anchor), curl -o && sha256sum, and aria2c -x8,
# alternated RUNS (3) rounds. Prints medians, the best, peak resident memory, and ratios of
# medians. SIZE_MIB (default 2048) sets the file size; PROFILE=1 adds a perf profile (below).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap
{ dpkg -s aria2 && dpkg -s time; } >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aria2 time >/dev/null; }
swift build -c release --product depot >&2
DEPOT=$PWD/.build/release/depot
SIZE_MIB=${SIZE_MIB:-2048}
RUNS=${RUNS:-3}
WORK=$(mktemp -d "$PWD/.build/bench-download.XXXXXX")
NGINX_PID=""
cleanup() { [ -n "$NGINX_PID" ] && kill -9 "$NGINX_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/www" "$WORK/nginx/logs" "$WORK/out"
FILE=$WORK/www/model.gguf

python3 bench/write-gguf.py "$FILE" "$SIZE_MIB"
DIGEST=$(sha256sum "$FILE" | cut -c1-64)
BYTES=$(stat -c %s "$FILE")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
error_log $WORK/nginx/logs/error.log; pid $WORK/nginx/nginx.pid;
events { worker_connections 256; }
http {
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path $WORK/nginx/b; proxy_temp_path $WORK/nginx/p; fastcgi_temp_path $WORK/nginx/f;
  uwsgi_temp_path $WORK/nginx/u; scgi_temp_path $WORK/nginx/s;
  server { listen 127.0.0.1:$PORT; root $WORK/www; }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
for _ in $(seq 50); do curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$PORT/model.gguf" && break; sleep 0.1; done
URL=http://127.0.0.1:$PORT/model.gguf
cat "$FILE" > /dev/null

# Each round runs every command once, in turn, so a noisy neighbour hits them all alike; each
# run starts from an empty output and a synced disk. Times in seconds, peak RSS in KiB.
declare -A TIMES RSS
NAMES=(curl curl_sync curl_sha aria depot depot4 depot1)
declare -A COMMANDS=(
    [curl]="curl -sf -o $WORK/out/m $URL"
    [curl_sync]="curl -sf -o $WORK/out/m $URL && sync"
    [curl_sha]="curl -sf -o $WORK/out/m $URL && sha256sum $WORK/out/m"
    [aria]="aria2c -q -x8 -s8 -k4M --file-allocation=falloc -d $WORK/out -o m $URL"
    [depot]="$DEPOT pull $URL --sha256 $DIGEST --store $WORK/store"
    [depot4]="$DEPOT pull $URL --sha256 $DIGEST --connections 4 --store $WORK/store"
    [depot1]="$DEPOT pull $URL --sha256 $DIGEST --connections 1 --store $WORK/store"
)
for _ in $(seq "$RUNS"); do
    for name in "${NAMES[@]}"; do
        rm -rf "$WORK/out" "$WORK/store"; mkdir -p "$WORK/out"; sync
        start=$(date +%s.%N)
        /usr/bin/time -f %M -o "$WORK/rss" bash -c "${COMMANDS[$name]}" > /dev/null 2>&1
        end=$(date +%s.%N)
        TIMES[$name]+="$(python3 -c "print($end - $start)") "
        RSS[$name]+="$(cat "$WORK/rss") "
    done
done
median() { python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" $1; }
fastest() { python3 -c "import sys; print(min(map(float, sys.argv[1:])))" $1; }
peak() { python3 -c "import sys; print(max(map(int, sys.argv[1:])) // 1024)" $1; }
rate() { python3 -c "print(f'{$BYTES / $1 / 1e6:.0f} MB/s')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
"$DEPOT" pull "$URL" --sha256 "$DIGEST" --store "$WORK/check" > /dev/null 2>&1
[ -f "$WORK/check/blobs/sha256/$DIGEST" ] || { echo "depot pull did not produce the verified blob" >&2; exit 1; }

echo
echo "file: $((BYTES / 1048576)) MiB over loopback from nginx, $RUNS alternated rounds, $(nproc) cores"
printf '%-46s %9s %9s %10s %9s\n' "" median best "median rate" "peak RSS"
label() {
    case $1 in
        curl) echo "curl -o (unverified)" ;; curl_sync) echo "curl -o && sync (durable anchor)" ;;
        curl_sha) echo "curl -o && sha256sum" ;; aria) echo "aria2c -x8 (unverified)" ;;
        depot) echo "depot pull --sha256, 8 connections (verified)" ;; depot4) echo "depot pull --sha256, 4 connections" ;;
        depot1) echo "depot pull --sha256, 1 connection" ;;
    esac
}
for name in "${NAMES[@]}"; do
    m=$(median "${TIMES[$name]}")
    printf '%-46s %8.2fs %8.2fs %10s %6s MiB\n' "$(label "$name")" "$m" "$(fastest "${TIMES[$name]}")" "$(rate "$m")" "$(peak "${RSS[$name]}")"
done
echo "runs (s): $(for name in "${NAMES[@]}"; do printf '%s: %s; ' "$name" "${TIMES[$name]}"; done)"
echo
curl_m=$(median "${TIMES[curl]}") sync_m=$(median "${TIMES[curl_sync]}") sha_m=$(median "${TIMES[curl_sha]}")
depot_m=$(median "${TIMES[depot]}") depot1_m=$(median "${TIMES[depot1]}") aria_m=$(median "${TIMES[aria]}")
echo "medians, throughput ratios (higher is faster for depot):"
echo "  depot 8 connections vs curl unverified (target >= 1.0x): $(ratio "$curl_m" "$depot_m")"
echo "  depot 8 connections vs curl && sync (durable):            $(ratio "$sync_m" "$depot_m")"
echo "  depot 8 connections vs curl && sha256sum:                 $(ratio "$sha_m" "$depot_m")"
echo "  depot 1 connection vs curl unverified (target >= 0.9x):   $(ratio "$curl_m" "$depot1_m")"
echo "  depot 8 connections vs aria2c -x8 unverified:             $(ratio "$aria_m" "$depot_m")"

# PROFILE=1: where a pull's time goes. perf records one 8-connection and one 1-connection pull
# (call graphs; the release build keeps its symbols) and prints the heaviest symbols by their
# own time, and the split between depot, the C library, the kernel and the Swift runtime.
if [ -n "${PROFILE:-}" ]; then
    command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
    for connections in 8 1; do
        rm -rf "$WORK/store"; sync
        perf record -q -F 999 -g -o "$WORK/perf.data" -- "$DEPOT" pull "$URL" --sha256 "$DIGEST" --connections "$connections" --store "$WORK/store" > /dev/null 2>&1
        echo
        echo "perf, depot pull with $connections connection(s): heaviest symbols (self time)"
        perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort symbol --percent-limit 1.5 2>/dev/null \
            | grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]-]+$//' | head -25
        echo "by shared object:"
        perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+$//' | head -8
    done
fi
