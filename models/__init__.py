"""Hushlab's models: the causal GCRN, checkpoints, the processor interface and the SSL teacher."""
