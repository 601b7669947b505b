#!/usr/bin/env bash
# Round nineteen of the baseline: the 4-tap model trained from scratch on the shipped recipe
# (training/configs/baseline-df4-scratch.toml), judged when its run has finished by the rule
# written in that config before any score of it: round fifteen's rule (scripts/decide.py) on its
# best checkpoint against the shipped baseline; real-test scored once, and only after the choice.
#   scripts/judge-scratch.sh            the three choice splits and the verdict
#   scripts/judge-scratch.sh --test     then real-test, if the verdict chose the run
set -euo pipefail
cd "$(dirname "$0")/.."
R=runs
M=$R/baseline-df4-scratch/best.safetensors
[ -f "$M" ] || { echo "error: $M not found: train it first" >&2; exit 2; }
for split in real-valid real-voices valid; do
  .venv/bin/hushlab eval noisy baseline "$M" --split $split -n 40 --backend onnx --workers 2 \
    --reuse $R/eval-$split-r18 --paired baseline --out $R/eval-$split-r19
done
.venv/bin/python scripts/decide.py --real-valid $R/eval-real-valid-r19 \
  --real-voices $R/eval-real-voices-r19 --valid $R/eval-valid-r19 --models "$M" \
  | tee $R/decision-r19.md
if [ "${1:-}" = "--test" ] && grep -q "^Verdict: ship" $R/decision-r19.md; then
  .venv/bin/hushlab eval noisy baseline "$M" rnnoise deepfilternet3@polyphase --split real-test \
    -n 100 --backend onnx --workers 2 --reuse $R/eval-real-test-r15 --paired "$M" \
    --out $R/eval-real-test-r19
fi
