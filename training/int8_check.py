"""The accuracy check that lets a model stream with int8 weights by default.

    python -m training.int8_check --fp32 runs/eval-valid-fp32 --int8 runs/eval-valid-int8

compares two ``hushlab eval`` reports of the same mixtures (validation split), one scored with
``--backend onnx`` and one with ``--backend onnx-int8``; for every shipped model in both, the
int8 step passes when its PESQ-WB is within 0.02 and its SI-SDR within 0.2 dB of the fp32
step's at every SNR. The verdict, with the figures, the weights' digest and the width of the
int8 weights (7 bits on x86 CPUs without VNNI, else 8; recorded by the int8 report), is written
beside the model (``int8_check.json``); ``backend="auto"`` then picks ``onnx-int8`` for it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dsp.errors import UserError
from models.checkpoint import shipped_models
from models.onnx_step import INT8_CHECK_FILE as CHECK_FILE

MAX_PESQ = 0.02
MAX_SI_SDR_DB = 0.2


def compare(fp32: dict, int8: dict, name: str) -> dict:
    """Per-SNR differences (int8 - fp32) of one processor in two report summaries."""
    out, passed = {}, True
    for snr, metrics in fp32[name].items():
        d_pesq = int8[name][snr]["pesq"]["mean"] - metrics["pesq"]["mean"]
        d_sisdr = int8[name][snr]["si_sdr"]["mean"] - metrics["si_sdr"]["mean"]
        ok = abs(d_pesq) <= MAX_PESQ and abs(d_sisdr) <= MAX_SI_SDR_DB
        out[snr] = {"pesq": round(d_pesq, 4), "si_sdr": round(d_sisdr, 3), "ok": ok}
        passed = passed and ok
    return {"passed": passed, "differences": out}


def _shipped_by_digest(shipped: dict) -> dict[str, str]:
    """``weights:<digest>`` (as eval reports record it) -> shipped name."""
    from models.checkpoint import load_checkpoint
    from models.onnx_step import weights_digest

    out = {}
    for name, path in shipped.items():
        model, _ = load_checkpoint(str(path))
        out["weights:" + weights_digest(model)] = name
    return out


def _versions() -> dict[str, str]:
    """The exporter and runtime the check ran on (requirements.lock pins them)."""
    from importlib.metadata import version

    return {d: version(d) for d in ("torch", "onnx", "onnxruntime")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fp32", required=True, help="eval report scored with --backend onnx")
    p.add_argument("--int8", required=True, help="eval report scored with --backend onnx-int8")
    a = p.parse_args(argv)
    reports = {}
    for key, folder in (("fp32", a.fp32), ("int8", a.int8)):
        try:
            reports[key] = json.loads((Path(folder) / "summary.json").read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{folder}: not a hushlab eval report ({exc})") from None
    f, i = reports["fp32"], reports["int8"]
    if f["meta"].get("mixtures") != i["meta"].get("mixtures"):
        raise UserError("the two reports scored different mixtures")
    shipped = shipped_models()
    by_digest = _shipped_by_digest(shipped)
    written = False
    for name in sorted(set(f["summary"]) & set(i["summary"])):
        digest = f["meta"]["digests"].get(name)
        if i["meta"]["digests"].get(name) != digest:
            raise UserError(f"{name}: the two reports scored different weights")
        # reports that record their backends must be the fp32 and the int8 step, in that order
        for key, want in (("fp32", "onnx"), ("int8", "onnx-int8")):
            got = reports[key]["meta"].get("backends", {}).get(name, want)
            if got != want:
                raise UserError(f"{name}: the --{key} report scored it with --backend {got}")
        # a shipped model, scored by its name or by a checkpoint with the same weights
        target = name if name in shipped else by_digest.get(digest)
        if target is None:
            continue
        res = compare(f["summary"], i["summary"], name)
        res.update(
            digest=digest,
            split=f["meta"]["split"],
            pairs=f["meta"]["pairs"],
            limits={"pesq": MAX_PESQ, "si_sdr_db": MAX_SI_SDR_DB},
            weight_bits=i["meta"].get("int8_weight_bits"),  # 7 on x86 without VNNI
            reports=[a.fp32, a.int8],
            versions=_versions(),
        )
        (shipped[target].parent / CHECK_FILE).write_text(json.dumps(res, indent=2) + "\n")
        verdict = "passes" if res["passed"] else "fails"
        print(f"{target}: int8 {verdict}: {res['differences']}")
        written = True
    if not written:
        raise UserError(
            "no shipped model in both reports: the verdict is kept beside a shipped model, so"
            " ship it first (python -m training.ship), then score it and run the check"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
