#!/usr/bin/env bash
# Real music that no corpus split holds: the three soundtrack pieces of frozen-bubble-data
# (GPL-2+; 11.7 minutes at 44.1 kHz, stereo, mixed to mono by the eval) under the real-valid
# speakers (the corpus's; 42 recordings), 30 pairs at -5 / 0 / +5 dB: the shipped baseline
# beside RNNoise and DeepFilterNet3, paired against the baseline. A check of what a user's music
# does, not a split any choice is made on. Needs the corpus (`hushlab corpus build`) and apt.
# Usage: scripts/music_check.sh [OUT]   (default runs/eval-music-fb)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/eval-music-fb}
CORPUS=$(.venv/bin/python -c "from training.corpus_sources import default_corpus_dir as d; print(d())")
DL=$(dirname "$CORPUS")/music-frozen-bubble
test -d "$CORPUS/speech/real-valid" || { echo "no corpus at $CORPUS: run hushlab corpus build" >&2; exit 2; }
if ! ls "$DL"/*zik*.ogg >/dev/null 2>&1; then
  mkdir -p "$DL/deb"
  (cd "$DL/deb" && apt-get download frozen-bubble-data)
  dpkg -x "$DL"/deb/frozen-bubble-data_*.deb "$DL/deb/x"
  cp "$DL"/deb/x/usr/share/games/frozen-bubble/snd/*zik*.ogg "$DL/"
  rm -rf "$DL/deb"
fi
.venv/bin/hushlab eval noisy baseline rnnoise deepfilternet3@polyphase \
  --clean-dir "$CORPUS/speech/real-valid" --noise-dir "$DL" -n 30 --backend onnx --workers 2 \
  --paired baseline --out "$OUT"
