#!/usr/bin/env bash
# Store benchmark (not a test). In one run, on one file in the page cache:
#   - import by hardlink (hash + link) against `openssl dgst -sha256` (SHA-NI) of the same file
#   - re-import of a file that already is a stored blob (inode shortcut, no hashing)
#   - import by copy (hash while copying, fsync) against `cp` + `sha256sum` and `cp` + openssl
#   - `depot list` of 10,000 entries against the same join in the sqlite3 shell
# Prints the best of RUNS runs and the ratios. SIZE_MIB (default 1024) sets the file size.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap
swift build -c release --product depot >&2
DEPOT=$PWD/.build/release/depot
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
# On the build's file system, so hardlinks into the store work.
WORK=$(mktemp -d "$PWD/.build/bench-store.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FILE=$WORK/model.gguf

python3 - "$FILE" "$SIZE_MIB" <<'PY'
import os, struct, sys
path, mib = sys.argv[1], int(sys.argv[2])
def string(s):
    b = s.encode()
    return struct.pack('<Q', len(b)) + b
rows = mib * 1024  # int8 tensor of 1024 columns: 1 KiB a row
header = b'GGUF' + struct.pack('<IQQ', 3, 1, 1)
header += string('general.architecture') + struct.pack('<I', 8) + string('llama')
header += string('w') + struct.pack('<I', 2) + struct.pack('<QQ', 1024, rows) + struct.pack('<I', 24) + struct.pack('<Q', 0)
header += b'\0' * ((32 - len(header) % 32) % 32)
with open(path, 'wb') as f:
    f.write(header)
    for _ in range(mib // 64):
        f.write(os.urandom(64 << 20))
    f.write(os.urandom((mib % 64) << 20))
PY
cat "$FILE" > /dev/null
BYTES=$(stat -c %s "$FILE")

# best SETUP COMMAND: runs SETUP untimed, then times COMMAND; prints the best seconds of RUNS.
best() {
    local setup=$1 command=$2 fastest="" start end
    for _ in $(seq "$RUNS"); do
        eval "$setup"
        start=$(date +%s.%N)
        eval "$command" > /dev/null
        end=$(date +%s.%N)
        fastest=$(python3 -c "a=$end-$start; b='$fastest'; print(a if not b or a < float(b) else b)")
    done
    echo "$fastest"
}
rate() { python3 -c "print(f'{$BYTES / $1 / 1e9:.2f} GB/s')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }

S=$WORK/store
fresh="rm -rf $S $WORK/copy"
openssl_s=$(best ":" "openssl dgst -sha256 $FILE")
sha256sum_s=$(best ":" "sha256sum $FILE")
link_s=$(best "$fresh" "$DEPOT import $FILE --name bench:link --store $S")
relink_s=$(best "$fresh; $DEPOT import $FILE --name bench:link --store $S > /dev/null" \
                "$DEPOT import $FILE --name bench:again --store $S")
copy_s=$(best "$fresh" "$DEPOT import $FILE --copy --name bench:copy --store $S")
cp_sha_s=$(best "$fresh" "cp $FILE $WORK/copy && sha256sum $WORK/copy")
cp_openssl_s=$(best "$fresh" "cp $FILE $WORK/copy && openssl dgst -sha256 $WORK/copy")
cp_sync_s=$(best "$fresh" "cp $FILE $WORK/copy && sync $WORK/copy")

# 10,000 entries sharing one blob, added with SQL so the set-up takes seconds, not hours.
rm -rf "$S"
"$DEPOT" import "$FILE" --name bench:seed --store "$S" > /dev/null
sqlite3 "$S/depot.sqlite" <<'SQL'
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9999)
INSERT INTO model (name, status, sourceURL, license, createdAt, lastUsedAt)
  SELECT 'bulk:m' || i, status, sourceURL, license, createdAt, createdAt FROM n, model WHERE name = 'bench:seed';
INSERT INTO modelFile (modelId, role, shardIndex, blobDigest, size, originalFilename, sourceURL, facts, hashSource)
  SELECT m.id, f.role, 0, f.blobDigest, f.size, f.originalFilename, f.sourceURL, f.facts, f.hashSource
  FROM model m, modelFile f WHERE m.name LIKE 'bulk:%' AND f.modelId = (SELECT id FROM model WHERE name = 'bench:seed');
SQL
entries=$("$DEPOT" list --json --store "$S" | grep -c '"name" : "bulk:\|"name" : "bench:seed"' || true)
list_s=$(best ":" "$DEPOT list --store $S")
list_json_s=$(best ":" "$DEPOT list --json --store $S")
sqlite_s=$(best ":" "sqlite3 $S/depot.sqlite 'SELECT m.name, m.status, m.lastUsedAt, f.role, f.blobDigest, f.size, f.facts, (SELECT COUNT(*) FROM appReference a WHERE a.modelId = m.id) FROM model m JOIN modelFile f ON f.modelId = m.id ORDER BY m.name'")

echo
echo "file: $((BYTES / 1048576)) MiB, best of $RUNS runs, page cache warm"
printf '%-44s %8.3f s  %s\n' "openssl dgst -sha256" "$openssl_s" "$(rate "$openssl_s")"
printf '%-44s %8.3f s  %s\n' "sha256sum" "$sha256sum_s" "$(rate "$sha256sum_s")"
printf '%-44s %8.3f s  %s\n' "depot import (hardlink: hash + link)" "$link_s" "$(rate "$link_s")"
printf '%-44s %8.3f s\n' "depot import of a stored blob (inode match)" "$relink_s"
printf '%-44s %8.3f s  %s\n' "depot import --copy (hash + copy + fsync)" "$copy_s" "$(rate "$copy_s")"
printf '%-44s %8.3f s\n' "cp + sha256sum" "$cp_sha_s"
printf '%-44s %8.3f s\n' "cp + openssl dgst" "$cp_openssl_s"
printf '%-44s %8.3f s\n' "cp + sync (no hash)" "$cp_sync_s"
printf '%-44s %8.3f s  (%s entries)\n' "depot list" "$list_s" "$entries"
printf '%-44s %8.3f s\n' "depot list --json" "$list_json_s"
printf '%-44s %8.3f s\n' "sqlite3 shell, same join" "$sqlite_s"
echo
echo "hash speed, depot link import vs openssl (target >= 0.9x): $(ratio "$openssl_s" "$link_s")"
echo "depot link import vs sha256sum:                            $(ratio "$sha256sum_s" "$link_s")"
echo "re-import of a stored blob vs first import:                $(ratio "$link_s" "$relink_s") faster"
echo "depot copy import vs cp + sha256sum:                       $(ratio "$cp_sha_s" "$copy_s")"
echo "depot copy import vs cp + openssl:                         $(ratio "$cp_openssl_s" "$copy_s")"
echo "depot list of 10,000 vs sqlite3 shell:                     $(ratio "$sqlite_s" "$list_s")"
