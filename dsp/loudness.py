"""Loudness matching for listening tests: each stream brought to one active speech level.

A listener prefers the louder of two otherwise equal stimuli, and an enhancer changes level (it
removes noise energy, and models differ in how much), so A/B, ABX and MUSHRA comparisons are run
level-matched (ITU-R BS.1534 asks for it; speech tests align the active speech level, ITU-T P.56).
:class:`LevelMatcher` does it on a live stream, block by block: it tracks the stream's active
level - the mean power of the blocks above ``floor_db`` dBFS and within ``gate_db`` of the
loudest recent block, a running average over about ``tau_s`` seconds - and applies the gain
that brings it to ``target_db``, ramped across each block (no zipper noise), limited to
+-``max_gain_db``, and held through pauses and silence (a noise floor is never raised to speech
level).
"""

from __future__ import annotations

import math

import numpy as np

TARGET_DB = -26.0  # dBFS active level: the level the app's file sources play speech at


class LevelMatcher:
    def __init__(
        self,
        rate: int,
        target_db: float = TARGET_DB,
        tau_s: float = 3.0,
        gate_db: float = 15.0,
        floor_db: float = -60.0,
        max_gain_db: float = 20.0,
        slew_db_per_s: float = 60.0,
    ):
        self.rate = rate
        self.target_db = target_db
        self.tau_s = tau_s
        self.gate_db = gate_db
        self.floor_db = floor_db
        self.max_gain_db = max_gain_db
        self.slew_db_per_s = slew_db_per_s  # the fastest the gain moves (turning matching on)
        self.power = 0.0  # running active power; 0 until a block clears the floor
        self.peak_db = -math.inf  # the loudest recent block, decaying: the gate is relative to it
        self.peak_decay_db_per_s = 3.0
        self._active = 0  # active blocks since the level was (re)started
        self.gain = 1.0  # the gain applied at the end of the last block

    @property
    def level_db(self) -> float:
        """The active level tracked so far (dBFS; -inf before any active block)."""
        return 10 * math.log10(self.power) if self.power > 0 else -math.inf

    def copy_state(self, other: LevelMatcher) -> None:
        """Continue from ``other``'s level and gain (a stream replaced by its successor)."""
        self.power, self.gain, self.peak_db = other.power, other.gain, other.peak_db
        self._active = other._active

    def process(self, x: np.ndarray, apply: bool = True) -> np.ndarray:
        """``x`` at the matched level (float32). With ``apply`` False the level is tracked and
        ``x`` returned as it is, the gain resting at 1: matching turned on later starts from
        the level heard so far and moves the gain there at ``slew_db_per_s``."""
        n = len(x)
        if n == 0:
            return np.zeros(0, np.float32)
        ms = float(np.mean(np.square(x, dtype=np.float64)))
        if math.isfinite(ms) and ms > 0:
            db = 10 * math.log10(ms)
            self.peak_db = max(db, self.peak_db - self.peak_decay_db_per_s * n / self.rate)
            if db <= self.floor_db or db <= self.peak_db - self.gate_db:
                pass  # a pause, silence or a noise floor: the level holds
            elif self.power <= 0 or db > self.level_db + self.gate_db:
                self.power = ms  # the first active block, or speech after a noise-only start
                self._active = 1
            else:  # the mean of the active blocks so far, then a running one over tau_s
                self._active += 1
                a = max(min(1.0, n / (self.rate * self.tau_s)), 1 / self._active)
                self.power += a * (ms - self.power)
        if not apply:
            self.gain = 1.0
            return x.astype(np.float32, copy=False)
        g0 = self.gain
        if self.power > 0:
            want = min(max(self.target_db - self.level_db, -self.max_gain_db), self.max_gain_db)
            now = 20 * math.log10(g0)
            step = self.slew_db_per_s * n / self.rate
            self.gain = 10 ** (min(max(want, now - step), now + step) / 20)
        ramp = np.linspace(g0, self.gain, n + 1, dtype=np.float32)[1:]
        return (x * ramp).astype(np.float32, copy=False)
