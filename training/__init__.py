"""Hushlab's training package: corpus, datasets, training loop, evaluation, embedding analysis."""

from dsp.stft import DEFAULT_GEOMETRY as _GEOMETRY

# the corpus is stored at the rate of the models' STFT geometry (PAPER.md: 16 kHz)
CORPUS_RATE = _GEOMETRY.sample_rate
