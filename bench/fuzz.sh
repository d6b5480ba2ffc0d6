#!/usr/bin/env bash
# Fuzzes the decoders that take hostile input (GGUF headers, nearby records, gossip messages)
# with libFuzzer and AddressSanitizer, from a seed corpus our own writer and encoders make.
#   bash bench/fuzz.sh               10 million inputs (RUNS=N for another count)
#   FUZZ_SECONDS=60 bash bench/fuzz.sh   a minute, as CI runs it
# Prints executions, crashes and peak memory; exits non-zero on a crash, a leak or an input that
# takes more than 2 GB or 10 s. A crash leaves its input in bench/out/fuzz/crashes/: make it a
# regression test (Tests/GGUFTests or Tests/DepotMeshTests) before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
out=bench/out/fuzz
rm -rf "$out/crashes" && mkdir -p "$out/corpus" "$out/crashes"
DEPOT_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize=fuzzer --sanitize=address --product depot-fuzz >&2
binary=.build-fuzz/debug/depot-fuzz
# LLVMFuzzerInitialize writes the seeds; -runs=0 only reads them back.
DEPOT_FUZZ_SEEDS="$out/corpus" "$binary" -runs=0 "$out/corpus" >/dev/null 2>&1
if [ -n "${FUZZ_SECONDS:-}" ]; then limit=(-max_total_time="$FUZZ_SECONDS"); else limit=(-runs="${RUNS:-10000000}"); fi
set +e
"$binary" "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -max_len=262144 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/" "$out/corpus" 2> "$out/log"
status=$?
set -e
executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/log" | grep -o '[0-9]*$' || echo 0)
peak=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$out/log" | grep -o '[0-9]*$' || echo "?")
crashes=$(find "$out/crashes" -type f | wc -l)
echo "depot-fuzz: ${executions} executions, ${crashes} crashes, peak memory ${peak} MB (log: $out/log)"
[ "$status" -eq 0 ] || tail -30 "$out/log" >&2
exit "$status"
