#!/usr/bin/env bash
# Real-time engine health through a real PortAudio device: a PulseAudio null sink's monitor is
# the microphone. Plays the demo (noisy speech, 0 dB) into the sink for ~24 s while
# `hushlab stream` runs the baseline from the monitor to a file at real-time pace.
# Writes runs/stream-health.json (per-hop time, RTF, latency, xruns) and runs/latency.json
# (end-to-end latency measured with clicks, scripts/measure_latency.py).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
started=0
if ! pulseaudio --check 2>/dev/null; then
  pulseaudio -D --system=false --exit-idle-time=-1 --disallow-exit -n \
    -L module-native-protocol-unix \
    -L "module-null-sink sink_name=vsink sink_properties=device.description=VirtualSink" \
    -L module-always-sink 2>/dev/null
  started=1
  sleep 1
fi
.venv/bin/hushlab stream --input app/assets/demo_clean.flac --noise app/assets/demo_noise.flac \
  --snr 0 --model bypass --output runs/demo-noisy.wav --as-fast-as-possible >/dev/null
.venv/bin/hushlab stream --input default --output runs/stream-out.wav --model baseline \
  --ab bypass --switch-every 2 --seconds 24 --json runs/stream-health.json &
pid=$!
sleep 1
paplay --device=vsink runs/demo-noisy.wav
paplay --device=vsink runs/demo-noisy.wav
wait $pid
# End-to-end latency, measured: clicks through two virtual devices with the engine in between
# (writes runs/latency.json beside the computed figure).
.venv/bin/python scripts/measure_latency.py --model baseline --json runs/latency.json
[ "$started" = 1 ] && pulseaudio -k || true
