#!/bin/sh
# The 1,000-edit world study (docs/notes/issue-18-study1000.md): every method advanced 100 edits per round, so that all
# methods have the same number of edits whenever the run is stopped (each round resumes the last).
# usage: sh docs/sequential-world-1000/run.sh OUT [FIRST_LIMIT] [LAST_LIMIT] [METHODS] [BATCH]
#   METHODS defaults to the four batched editors (batches of 100); ROME edits one request per call:
#   sh docs/sequential-world-1000/run.sh out/seq1000-rome 100 1000 rome 1
set -e
OUT=${1:-out/seq1000}
H=fixtures/world/model/hparams
L=${2:-100}
LAST=${3:-1000}
METHODS=${4:-memit,alphaedit,emmet,memit+nas}
BATCH=${5:-100}
# One --hparams entry per method named (memit+nas takes memit's file).
HP=""
for m in $(echo "$METHODS" | tr ',' ' '); do
  b=${m%+nas}
  case ",$HP," in *",$b="*) continue ;; esac
  HP="${HP:+$HP,}$b=$H/$b.json"
done
while [ "$L" -le "$LAST" ]; do
  echo "== round to $L edits: $(date -u +%H:%M:%S)"
  npx -y deno@2 run -P src/cli.ts eval --mode sequential --every 100 --batch-size "$BATCH" --limit "$L" \
    --method "$METHODS" \
    --hparams "$HP" \
    --model fixtures/world/model --data docs/sequential-world-1000/requests.json \
    --ppl-text fixtures/world/heldout.jsonl --out "$OUT"
  L=$((L + 100))
done
echo "== done: $(date -u +%H:%M:%S)"
