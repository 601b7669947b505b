"""``hushlab enhance INPUT OUTPUT --model NAME_OR_PATH``: files or whole folders, offline.

The audio goes through the model's streaming path (the same code the app runs), latency
compensated: the output has the input's rate, length and channel count, time-aligned with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="an audio file or a folder (searched recursively)")
    p.add_argument("output", help="output file, or folder when INPUT is a folder")
    p.add_argument(
        "--model",
        default="baseline",
        help="shipped model name, checkpoint path, bypass, rnnoise or deepfilternet3",
    )
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])


def enhance_file(proc, src: Path, dst: Path) -> None:
    import numpy as np
    import soundfile as sf

    from dsp.audio_io import AudioError, check_audio, save_audio
    from models.processor import enhance_array

    try:
        data, sr = sf.read(str(src), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{src}: cannot read audio ({exc})") from None
    for c in range(data.shape[1]):
        check_audio(data[:, c], str(src))
    out = np.stack([enhance_array(proc, data[:, c], sr) for c in range(data.shape[1])], axis=1)
    if dst.suffix.lower() not in (".wav", ".flac", ".ogg"):
        dst = dst.with_suffix(".wav")
    # the input's sample format: a float file stays float (samples above full scale survive)
    subtype = sf.info(str(src)).subtype
    save_audio(dst, out[:, 0] if out.shape[1] == 1 else out, sr, subtype=subtype)


def run(args) -> int:
    from dsp.audio_io import AudioError, find_audio_files
    from dsp.errors import UserError
    from dsp.progress import progress as tqdm
    from models.processor import load_processor

    src, dst = Path(args.input), Path(args.output)
    if not src.exists():
        raise UserError(f"{src}: no such file or folder")
    proc = load_processor(args.model, backend=args.backend)
    if src.is_file():
        if dst.is_dir():
            dst = dst / src.name
        enhance_file(proc, src, dst)
        print(f"wrote {dst}")
        return 0
    files = find_audio_files(src)
    if not files:
        raise UserError(f"{src}: no audio files found")
    failed = []
    for f in tqdm(files, desc="enhance", unit="file", dynamic_ncols=True):
        target = dst / f.relative_to(src)
        try:
            enhance_file(proc, f, target)
        except AudioError as exc:
            failed.append((f, str(exc)))
    print(f"enhanced {len(files) - len(failed)} of {len(files)} files into {dst}")
    if failed:
        print(f"{len(failed)} file(s) could not be processed:", file=sys.stderr)
        for f, why in failed:
            print(f"  {f}: {why}", file=sys.stderr)
        return 1
    return 0
