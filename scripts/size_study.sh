#!/usr/bin/env bash
# The model-size study (training/size_study.py) on a 2-core CPU: two chains of runs side by side,
# one thread each; resumable (run it again to continue), logs in runs/size-study/*.log.
#   python -m training.size_study plan --budget-h 0.6 && bash scripts/size_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p runs/size-study
( for s in L S; do $PY -m training.size_study run $s >> runs/size-study/$s.log 2>&1; done ) &
( for s in M XS; do $PY -m training.size_study run $s >> runs/size-study/$s.log 2>&1; done ) &
wait
$PY -m training.size_study plot
