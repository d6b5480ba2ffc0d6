#!/usr/bin/env bash
# Download benchmark (not a test). One file served by nginx on loopback, page cache warm;
# in the same run: depot pull (verified against --sha256) against curl -o (unverified),
# curl -o && sha256sum, and aria2c -x8. Prints the best of RUNS runs and the ratios.
# SIZE_MIB (default 2048) sets the file size.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap
dpkg -s aria2 >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aria2 >/dev/null; }
swift build -c release --product depot >&2
DEPOT=$PWD/.build/release/depot
SIZE_MIB=${SIZE_MIB:-2048}
RUNS=${RUNS:-2}
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

best() {
    local command=$1 fastest="" start end
    for _ in $(seq "$RUNS"); do
        rm -rf "$WORK/out" "$WORK/store"; mkdir -p "$WORK/out"; sync
        start=$(date +%s.%N)
        eval "$command" > /dev/null 2>&1
        end=$(date +%s.%N)
        fastest=$(python3 -c "a=$end-$start; b='$fastest'; print(a if not b or a < float(b) else b)")
    done
    echo "$fastest"
}
rate() { python3 -c "print(f'{$BYTES / $1 / 1e6:.0f} MB/s')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }

curl_s=$(best "curl -sf -o $WORK/out/m $URL")
curl_sha_s=$(best "curl -sf -o $WORK/out/m $URL && sha256sum $WORK/out/m")
aria_s=$(best "aria2c -q -x8 -s8 -k4M --file-allocation=falloc -d $WORK/out -o m $URL")
depot_s=$(best "$DEPOT pull $URL --sha256 $DIGEST --store $WORK/store")
depot4_s=$(best "$DEPOT pull $URL --sha256 $DIGEST --connections 4 --store $WORK/store")
depot1_s=$(best "$DEPOT pull $URL --sha256 $DIGEST --connections 1 --store $WORK/store")
"$DEPOT" pull "$URL" --sha256 "$DIGEST" --store "$WORK/check" > /dev/null 2>&1
[ -f "$WORK/check/blobs/sha256/$DIGEST" ] || { echo "depot pull did not produce the verified blob" >&2; exit 1; }

echo
echo "file: $((BYTES / 1048576)) MiB over loopback from nginx, best of $RUNS runs, $(nproc) cores"
printf '%-46s %8.2f s  %s\n' "curl -o (unverified)" "$curl_s" "$(rate "$curl_s")"
printf '%-46s %8.2f s  %s\n' "curl -o && sha256sum" "$curl_sha_s" "$(rate "$curl_sha_s")"
printf '%-46s %8.2f s  %s\n' "aria2c -x8 (unverified)" "$aria_s" "$(rate "$aria_s")"
printf '%-46s %8.2f s  %s\n' "depot pull --sha256, 8 connections (verified)" "$depot_s" "$(rate "$depot_s")"
printf '%-46s %8.2f s  %s\n' "depot pull --sha256, 4 connections" "$depot4_s" "$(rate "$depot4_s")"
printf '%-46s %8.2f s  %s\n' "depot pull --sha256, 1 connection" "$depot1_s" "$(rate "$depot1_s")"
echo
echo "depot verified vs curl unverified (target >= 1.0x): $(ratio "$curl_s" "$depot_s")"
echo "depot verified vs curl + sha256sum (target >= 1.5x): $(ratio "$curl_sha_s" "$depot_s")"
echo "depot verified vs aria2c -x8 unverified:           $(ratio "$aria_s" "$depot_s")"
