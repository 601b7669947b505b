#!/usr/bin/env bash
# Judges a baseline run by round fifteen's rule, the rule every baseline round since has written
# in its config before any score: its best checkpoint against the shipped baseline on real-valid,
# real-voices and valid (40 pairs per SNR, the shipped baseline's scores reused from round
# eighteen's reports), the rule applied by scripts/decide.py; real-test scored once, and only
# after the choice. A report to reuse that this work tree lacks (a fresh clone) is left out, and
# what it held is scored again.
#   scripts/judge.sh runs/baseline-df4-scratch 19          the choice splits and the verdict
#   scripts/judge.sh runs/baseline-df4-scratch 19 --test   then real-test, if the verdict chose it
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: scripts/judge.sh RUN_FOLDER ROUND [--test]" >&2; exit 2; }
RUN=$1 N=$2 R=runs
M=$RUN/best.safetensors
[ -f "$M" ] || { echo "error: $M not found: train the run first" >&2; exit 2; }
reuse() { [ -f "$1/summary.json" ] && echo "--reuse $1" || true; }
for split in real-valid real-voices valid; do
  .venv/bin/hushlab eval noisy baseline "$M" --split $split -n 40 --backend onnx --workers 2 \
    $(reuse $R/eval-$split-r18) --paired baseline --out $R/eval-$split-r$N
done
.venv/bin/python scripts/decide.py --real-valid $R/eval-real-valid-r$N \
  --real-voices $R/eval-real-voices-r$N --valid $R/eval-valid-r$N --models "$M" \
  | tee $R/decision-r$N.md
if [ "${3:-}" = "--test" ] && grep -q "^Verdict: ship" $R/decision-r$N.md; then
  .venv/bin/hushlab eval noisy baseline "$M" rnnoise deepfilternet3@polyphase --split real-test \
    -n 100 --backend onnx --workers 2 $(reuse $R/eval-real-test-r15) --paired "$M" \
    --out $R/eval-real-test-r$N
fi
