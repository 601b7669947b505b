"""Pure signal processing for Hushlab: STFT, ring buffer, resampling, audio I/O, mixing, metrics.

No Qt and no model code lives here.
"""
