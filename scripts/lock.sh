#!/usr/bin/env bash
# `make lock`: refresh requirements.lock to the newest versions pyproject.toml's ranges allow,
# install them, and keep the new lock only if the tests and the shipped models' int8 checks
# pass on them. torch stays the pinned CPU build (installed by the Makefile, not locked).
#   bash scripts/lock.sh [--no-int8]   (the int8 checks need the corpus: hushlab corpus build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
cp requirements.lock /tmp/requirements.lock.before
restore() { cp /tmp/requirements.lock.before requirements.lock; $PY -m pip install -q -r requirements.lock; }
$PY -m piptools compile -q --upgrade --strip-extras --extra dev,peers,metrics,tts \
    --unsafe-package torch --no-emit-index-url --no-emit-find-links \
    -o requirements.lock pyproject.toml
$PY -m pip install -q -r requirements.lock
diff <(grep '==' /tmp/requirements.lock.before) <(grep '==' requirements.lock) || true
if ! $PY -m pytest -q; then
    echo "lock: the tests fail on the new versions; requirements.lock kept as it was" >&2
    restore
    exit 1
fi
if [[ "${1:-}" != "--no-int8" ]]; then
    # the int8 step of every shipped model against its fp32 step, on the validation mixtures
    out=runs/lock-int8
    .venv/bin/hushlab eval noisy baseline kd pretrain fusion --split valid -n 40 \
        --backend onnx --out "$out/fp32"
    .venv/bin/hushlab eval noisy baseline kd pretrain fusion --split valid -n 40 \
        --backend onnx-int8 --out "$out/int8"
    if ! $PY -m training.int8_check --fp32 "$out/fp32" --int8 "$out/int8"; then
        echo "lock: an int8 check fails on the new versions; requirements.lock kept" >&2
        restore
        exit 1
    fi
fi
echo "lock: requirements.lock refreshed; commit it with the int8_check.json files it changed"
