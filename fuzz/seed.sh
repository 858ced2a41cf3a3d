#!/usr/bin/env bash
# Fills fuzz/corpus/TARGET/ with the real inputs each fuzzer starts from:
# the codec corpus (without hashes: the decode target appends the right
# one), the built-in definitions and scenarios, the demo's export, a signed
# checkpoint, keys and proofs made by the real binary, and typed facts.
# Usage: fuzz/seed.sh [PATH-TO-styrlogg-BINARY]   (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$root/target}/debug/styrlogg}
[ -x "$bin" ] || { echo "no styrlogg binary at $bin: cargo build first, or pass its path" >&2; exit 2; }

for t in decode export definition scenario facts note proof; do mkdir -p "corpus/$t"; done
for f in "$root"/tests/corpus/v1/*.bin; do head -c -32 "$f" > "corpus/decode/$(basename "$f")"; done
cp "$root"/workflows/definitions/*.toml corpus/definition/
cp "$root"/workflows/scenarios/*.toml corpus/scenario/

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="$work/store"
"$bin" --data "$data" --keys "$work/keys" demo > /dev/null
"$bin" --data "$data" export -o corpus/export/demo.jsonl
head -n 3 corpus/export/demo.jsonl > corpus/export/three.jsonl
"$bin" --data "$data" --keys "$work/keys" key generate --name example.org/styrlogg > /dev/null
"$bin" --data "$data" --keys "$work/keys" key record --reason "Nyckel för kontrollpunkter" --by "Åsa Öberg" --role registrator > /dev/null
"$bin" --data "$data" --keys "$work/keys" checkpoint -o "$work/old.checkpoint"
"$bin" --data "$data" --keys "$work/keys" key public > corpus/note/vkey
cp "$work/keys/signing.key" corpus/note/skey
cp "$work/old.checkpoint" corpus/note/checkpoint
sed -n '1,/^$/p' "$work/old.checkpoint" > corpus/note/checkpoint-text
"$bin" --data "$data" --keys "$work/keys" record ljl-2012-styrsystem plats_bekraftad --on 2012-03-01 \
    --fact besked=plats --by "Test Testsson" --role skl > /dev/null
"$bin" --data "$data" --keys "$work/keys" checkpoint -o "$work/new.checkpoint"
"$bin" --data "$data" --keys "$work/keys" prove 12 --checkpoint "$work/new.checkpoint" -o corpus/proof/inclusion
"$bin" --data "$data" --keys "$work/keys" prove --from "$work/old.checkpoint" --checkpoint "$work/new.checkpoint" \
    -o corpus/proof/consistency

# facts: the first byte picks the type (fuzz/src/lib.rs, fact_specs).
i=0
for v in "2012-08-14" "Anna Berg|ordförande|elected" "8 000,50 kr" "LJ2012/896" \
    "Planeringsdelegationen|2012-08-14|§ 100" \
    "Projektplan|abababababababababababababababababababababababababababababababab" \
    "fri text" "konsultera" "Anita Brynje|anita.brynje@tyreso.se" "Anita Brynje|08-578 291 00"; do
  printf "\\x$(printf %02x $i)%s" "$v" > "corpus/facts/$i"
  i=$((i + 1))
done
for t in decode export definition scenario facts note proof; do
  echo "corpus/$t: $(ls "corpus/$t" | wc -l) file(s)"
done
