"""Where the engine's audio comes from and goes to: a file played as a microphone, audio devices
(listed and resolved by name), the speaker, and file sinks written by a thread of their own.
No Qt, no torch."""

from __future__ import annotations

import logging
import threading

import numpy as np

from dsp.errors import UserError

log = logging.getLogger(__name__)


class EngineError(UserError):
    pass


class LatencyTooLong(EngineError):
    """A processor needs more latency than a running engine was built for: restart it."""


class FileSource:
    """A file played as if it were a microphone: mono, at ``rate``, optionally looped and mixed
    with a noise file at a chosen SNR (then ``clean`` holds the scaled clean reference)."""

    kind = "file"

    def __init__(
        self,
        path,
        rate: int,
        noise=None,
        snr: float = 0.0,
        loop: bool = False,
        level_dbfs: float | None = None,
        audio: np.ndarray | None = None,
    ):
        from dsp.audio_io import load_audio
        from dsp.mixing import fit_length, mix_at_snr

        if audio is not None:
            x = np.asarray(audio, np.float32)
        else:
            x, _ = load_audio(path, rate, allow_silent=False)
        self.clean = None
        if noise is not None:
            v = noise if isinstance(noise, np.ndarray) else load_audio(noise, rate)[0]
            v = fit_length(np.asarray(v, np.float32), len(x))
            x, self.clean, _ = mix_at_snr(x, v, snr, level_dbfs=level_dbfs)
        self.audio = x
        self.rate = rate
        self.loop = loop
        self.pos = 0
        self.name = str(path) if path else "array"

    def read(self, n: int) -> np.ndarray | None:
        """Next ``n`` samples (fewer at the end); None when finished."""
        if self.pos >= len(self.audio):
            if not self.loop:
                return None
            self.pos = 0
        out = self.audio[self.pos : self.pos + n]
        self.pos += len(out)
        if self.loop and len(out) < n:
            self.pos = 0
            out = np.concatenate([out, self.audio[: n - len(out)]])
        return out


def list_devices() -> list[dict]:
    """Audio devices with host API and default rate; [] when PortAudio finds none."""
    try:
        import sounddevice as sd

        devs = sd.query_devices()
        apis = sd.query_hostapis()
    except Exception as exc:  # PortAudio missing or broken
        log.debug("no audio devices: %s", exc)
        return []
    out = []
    for i, d in enumerate(devs):
        out.append(
            {
                "index": i,
                "name": d["name"],
                "hostapi": apis[d["hostapi"]]["name"],
                "inputs": d["max_input_channels"],
                "outputs": d["max_output_channels"],
                "rate": int(d["default_samplerate"]),
            }
        )
    return out


def resolve_device(spec, want: str) -> dict:
    """'mic'/'speaker'/'default', an index or a name fragment -> device dict (clear errors)."""
    devs = list_devices()
    key = "inputs" if want == "input" else "outputs"
    cands = [d for d in devs if d[key] > 0]
    if not cands:
        raise EngineError(
            f"no audio {want} devices found (is a sound server running? on a "
            "machine without a sound card use a file source)"
        )
    if spec in (None, "", "mic", "speaker", "default"):
        try:
            import sounddevice as sd

            idx = sd.default.device[0 if want == "input" else 1]
            for d in cands:
                if d["index"] == idx:
                    return d
        except Exception as exc:  # no default device set: fall back to the names below
            log.debug("no default %s device: %s", want, exc)
        for d in cands:
            if d["name"] in ("default", "pulse"):
                return d
        return cands[0]
    if str(spec).isdigit():
        for d in cands:
            if d["index"] == int(spec):
                return d
        raise EngineError(f"no {want} device with index {spec}")
    for d in cands:
        if str(spec).lower() in d["name"].lower():
            return d
    names = ", ".join(d["name"] for d in cands)
    raise EngineError(f"no {want} device matching '{spec}' (have: {names})")


class DeviceSource:
    kind = "device"

    def __init__(self, spec=None):
        self.device = resolve_device(spec, "input")
        self.name = self.device["name"]


class SpeakerSink:
    def __init__(self, spec=None):
        self.device = resolve_device(spec, "output")
        self.name = self.device["name"]

    def close(self):
        pass


class FileSink:
    """Writes the engine output (and optionally the input) as WAV while the engine runs.

    The worker only queues copies of its blocks; a writer thread of the sink's own does the disk
    writes, so a slow disk never stalls the audio, and a write after ``close`` (a recording
    stopped while the worker was mid-block) is dropped instead of raising."""

    def __init__(
        self,
        path,
        rate: int,
        record_input: str | None = None,
        skip: int = 0,
        limit: int | None = None,
    ):
        """``skip``: drop the first so many output samples (the engine's latency, for a file
        that lines up with its input); ``limit``: write at most so many output samples."""
        import queue

        import soundfile as sf

        self.path = str(path)

        def open_(where):
            try:
                return sf.SoundFile(str(where), "w", samplerate=rate, channels=1, subtype="FLOAT")
            except Exception as exc:
                raise UserError(f"{where}: cannot write a recording there ({exc})") from None

        self._f = open_(self.path)
        try:
            self._fin = open_(record_input) if record_input else None
        except UserError:
            self._f.close()
            raise
        self.closed = False
        self.error = ""
        self._skip, self._limit, self.written = skip, limit, 0
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._writer, name="hushlab-sink", daemon=True)
        self._thread.start()

    def _writer(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            f, data = item
            try:
                f.write(data)
            except Exception as exc:  # a full disk: keep the audio going, say why once
                if not self.error:
                    self.error = f"{self.path}: {type(exc).__name__}: {exc}"
                    log.warning("recording stopped writing: %s", self.error)

    def write(self, out: np.ndarray) -> None:
        if self.closed:
            return
        if self._skip:
            k = min(self._skip, len(out))
            out, self._skip = out[k:], self._skip - k
        if self._limit is not None:
            out = out[: max(0, self._limit - self.written)]
        if len(out):
            self.written += len(out)
            self._q.put((self._f, np.array(out, np.float32)))

    def write_input(self, inp: np.ndarray) -> None:
        if self._fin is not None and not self.closed:
            self._q.put((self._fin, np.array(inp, np.float32)))

    def close(self) -> None:
        """Write everything queued, then close the files (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._q.put(None)
        self._thread.join()
        self._f.close()
        if self._fin is not None:
            self._fin.close()
