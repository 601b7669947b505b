#!/usr/bin/env bash
# Does storing a shipped model's weights as float16 change any score? For each model: its
# float16 copy (models.checkpoint.store_half) paired against it on real-valid, on the fp32 and
# on the int8 streaming paths. Reports in runs/half/eval-<model>-<backend>/paired.md.
#   bash scripts/half_precision_check.sh [MODEL ...]   (default: every shipped model)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
models=("$@")
[[ ${#models[@]} -gt 0 ]] || models=(baseline kd pretrain fusion)
mkdir -p runs/half
for m in "${models[@]}"; do
    $PY -c "from models.checkpoint import store_half; store_half('$m', 'runs/half/$m.safetensors')"
    for backend in onnx onnx-int8; do
        .venv/bin/hushlab eval "$m" "runs/half/$m.safetensors" --split real-valid -n 40 \
            --backend "$backend" --workers 1 --paired "$m" --out "runs/half/eval-$m-$backend" \
            > "runs/half/eval-$m-$backend.log" 2>&1
        tail -n 12 "runs/half/eval-$m-$backend/paired.md"
    done
done
