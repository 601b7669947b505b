#!/usr/bin/env bash
# Regenerate docs/app.png: the app in a real X window (Xvfb), playing the built-in demo (noisy
# speech), the spectrograms showing A (the baseline) and B (the distilled model) and their
# difference, after 10 s of playback.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs
Xvfb :99 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb' EXIT
sleep 1
DISPLAY=:99 QT_QPA_PLATFORM=xcb .venv/bin/hushlab app --demo --model-a baseline --model-b kd --view ab \
  --screenshot docs/app.png --screenshot-after 10 --quit-after 11
