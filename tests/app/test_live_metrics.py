"""The live reference tap keeps the clean reference aligned with the output, also across
input the engine dropped to catch up."""

import numpy as np

from app.live_metrics import ReferenceTap, describe


def test_reference_follows_the_output_and_dropped_input():
    clean = np.arange(1, 100_001, dtype=np.float32)  # sample i of the source is i + 1
    tap = ReferenceTap(clean, rate=1000, latency=10, seconds=0.05)  # 50 samples
    dry = np.arange(0, 60, dtype=np.float32)
    tap.push(0, dry, dry, dry)
    snap = tap.snapshot()
    out = np.arange(10, 60)  # the window: output samples 10..59 carry input 0..49
    np.testing.assert_array_equal(snap[0], clean[out - 10])
    tap.skip(at_output=80, n=5)  # 5 input samples dropped; output 80 on is 5 further along
    tap.push(60, np.zeros(40, np.float32), np.zeros(40, np.float32), None)
    snap = tap.snapshot()
    out = np.arange(50, 100)
    expect = clean[out - 10 + np.where(out >= 80, 5, 0)]
    np.testing.assert_array_equal(snap[0], expect)
    assert describe(None, ("a", "b")).endswith("waiting for speech")
