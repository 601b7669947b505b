#!/usr/bin/env bash
# Round six of the baseline: a model soup (training/soup.py) of the shipped baseline's own
# lineage - no training, one average of weights already trained.
#
# Ingredients: the shipped baseline (baseline-ft-pesq4-u3.toml's best) and the final weight
# averages (latest.safetensors) of the five second-stage runs that started from it on one recipe
# family (baseline-ft2-pesq4-ema, -pesq8-ema, -snr10-ema, -keep25-ema, -keep50-ema; none of them
# qualified alone). kd-pesq is left out: the baseline uses no SSL embeddings.
#   U6: the six, equal weights.   U5: the five runs without the shipped baseline, equal weights.
#
# Decision rule, written before any score of a soup (the round-two non-inferiority rule): paired
# against the shipped baseline on real-valid and real-voices (40 pairs per SNR), a candidate
# qualifies if no PESQ-WB is significantly lower at any SNR on either split, the mean STOI
# difference is >= -0.01 and the mean SI-SDR difference >= -0.3 dB at every SNR on both splits,
# and real-valid PESQ-WB at -5 dB is significantly higher. Of the qualifiers, ship the larger
# mean PESQ-WB gain at -5 dB over the two splits. real-test is scored once, after the choice.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
R=runs
test -f $R/baseline-pesq4u3.safetensors || git show f9650bc:models/shipped/baseline/model.safetensors > $R/baseline-pesq4u3.safetensors
FIVE=""
for r in pesq4 pesq8 snr10 keep25 keep50; do FIVE="$FIVE $R/baseline-ft2-$r-ema/latest.safetensors"; done
mkdir -p $R/soup-u6 $R/soup-u5
$PY -m training.soup $R/soup-u6/best.safetensors $R/baseline-pesq4u3.safetensors $FIVE
$PY -m training.soup $R/soup-u5/best.safetensors $FIVE
for split in real-valid real-voices; do
  .venv/bin/hushlab eval noisy baseline $R/soup-u6/best.safetensors $R/soup-u5/best.safetensors \
    --split $split -n 40 --backend onnx --workers 2 --reuse $R/eval-$split-r5e \
    --paired baseline --out $R/eval-$split-soup
done
