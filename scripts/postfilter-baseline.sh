#!/usr/bin/env bash
# Round seventeen of the baseline: no training - the shipped baseline's own output through the
# post-filter of dsp/postfilter.py ('baseline@pfBETA': PercepNet's gain sharpening, which deepens
# the suppression of the bins the model already removes and leaves the ones it keeps), at
# beta 0.02 (DeepFilterNet's default), 0.05 and 0.1.
#
# Decision rule, written before any score (round fifteen's rule): paired against the shipped
# baseline on real-valid and real-voices (40 pairs per SNR), a beta qualifies if no PESQ-WB is
# significantly lower at any SNR on either split, the mean STOI difference is >= -0.01 and the
# mean SI-SDR difference >= -0.3 dB at every SNR on both splits, -5 dB PESQ-WB is higher on both
# splits and significantly so on one of them or on their 80 pairs pooled (scripts/pooled.py),
# and on the synthetic valid split no PESQ-WB is significantly lower at any SNR and music's
# -5 dB PESQ-WB difference is >= -0.02 (scripts/by_noise.py). Of the qualifiers, the larger
# pooled -5 dB PESQ-WB gain becomes the shipped baseline's default post-filter. real-test is
# scored once, after the choice.
# Outcome: stopped after real-valid, where every beta already failed the rule (see
# docs/baseline-history.md, "Round seventeen").
set -euo pipefail
cd "$(dirname "$0")/.."
R=runs
B="baseline@pf0.02 baseline@pf0.05 baseline@pf0.1"
for split in real-valid real-voices valid; do
  .venv/bin/hushlab eval noisy baseline $B --split $split -n 40 --backend onnx --workers 2 \
    --reuse $R/eval-$split-r16 --paired baseline --out $R/eval-$split-r17
done
.venv/bin/python scripts/pooled.py $R/eval-real-valid-r17 $R/eval-real-voices-r17 \
  --models "${B// /,}"
.venv/bin/python scripts/by_noise.py $R/eval-valid-r17 --models "${B// /,}"
