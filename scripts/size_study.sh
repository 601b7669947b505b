#!/usr/bin/env bash
# The model-size study (training/size_study.py): every size side by side, one thread each, so
# that on any machine they have had the same CPU time at every moment (on 2 cores, half a core
# each). Resumable: run it again to continue; logs in runs/size-study/<size>.log.
#   python -m training.size_study plan --budget-h 0.6 && bash scripts/size_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p runs/size-study
for s in $($PY -c "from training.size_study import SIZES; print(*SIZES)"); do
    $PY -m training.size_study run "$s" >> "runs/size-study/$s.log" 2>&1 &
done
wait
$PY -m training.size_study plot
