"""A virtual microphone: a PulseAudio (or PipeWire-pulse) source named "Hushlab" that other
applications - a video call, a recorder - can pick as their microphone, carrying what the
engine plays. Made of a null sink (the engine's speaker) and a source remapped from its monitor;
both are removed again on close."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

from app.endpoints import EngineError

log = logging.getLogger(__name__)
SINK = "hushlab_vmic"
SOURCE = "Hushlab"


class VirtualMic:
    def __init__(self):
        self.modules: list[str] = []
        self._old_sink = os.environ.get("PULSE_SINK")

    def open(self) -> VirtualMic:
        """Create the sink and the source, and route this process's output to the sink."""
        if shutil.which("pactl") is None:
            raise EngineError("a virtual microphone needs PulseAudio or PipeWire (pactl not found)")
        for args in (
            [
                "module-null-sink",
                f"sink_name={SINK}",
                "sink_properties=device.description=Hushlab-out",
            ],
            [
                "module-remap-source",
                f"master={SINK}.monitor",
                f"source_name={SOURCE}",
                f"source_properties=device.description={SOURCE}",
            ],
        ):
            res = subprocess.run(["pactl", "load-module", *args], capture_output=True, text=True)
            if res.returncode != 0:
                self.close()
                raise EngineError(
                    f"could not create the virtual microphone ({args[0]}): "
                    f"{res.stderr.strip() or 'is a sound server running?'}"
                )
            self.modules.append(res.stdout.strip())
        os.environ["PULSE_SINK"] = SINK  # PortAudio's 'pulse' device now plays into it
        return self

    def close(self) -> None:
        for mod in reversed(self.modules):
            res = subprocess.run(["pactl", "unload-module", mod], capture_output=True, text=True)
            if res.returncode != 0:
                log.warning("could not remove module %s: %s", mod, res.stderr.strip())
        self.modules = []
        if self._old_sink is None:
            os.environ.pop("PULSE_SINK", None)
        else:
            os.environ["PULSE_SINK"] = self._old_sink

    def __enter__(self) -> VirtualMic:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
