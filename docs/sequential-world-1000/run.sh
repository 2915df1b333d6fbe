#!/bin/sh
# The 1,000-edit world study (docs/notes/issue-18-study1000.md): every method advanced 100 edits per round, so that all
# methods have the same number of edits whenever the run is stopped (each round resumes the last).
# usage: sh docs/sequential-world-1000/run.sh OUT [FIRST_LIMIT] [LAST_LIMIT]
set -e
OUT=${1:-out/seq1000}
H=fixtures/world/model/hparams
L=${2:-100}
LAST=${3:-1000}
while [ "$L" -le "$LAST" ]; do
  echo "== round to $L edits: $(date -u +%H:%M:%S)"
  npx -y deno@2 run -P src/cli.ts eval --mode sequential --every 100 --batch-size 100 --limit "$L" \
    --method memit,alphaedit,emmet,memit+nas \
    --hparams memit=$H/memit.json,alphaedit=$H/alphaedit.json,emmet=$H/emmet.json \
    --model fixtures/world/model --data docs/sequential-world-1000/requests.json \
    --ppl-text fixtures/world/heldout.jsonl --out "$OUT"
  L=$((L + 100))
done
echo "== done: $(date -u +%H:%M:%S)"
