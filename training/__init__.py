"""Hushlab's training package: corpus, datasets, training loop, evaluation, embedding analysis."""
