"""`hushlab eval` (reports, bypass = input, reuse of earlier scores) and `hushlab enhance` (rate,
length, channels and alignment kept; folders recursed; bad files listed, never fatal)."""

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from app.cli import main
from models.checkpoint import save_checkpoint
from models.gcrn import GCRN, GCRNConfig
from tests.conftest import speechlike

SMALL = GCRNConfig(channels=(4, 4, 8, 8, 16))


def _checkpoint(path, seed):
    import torch

    torch.manual_seed(seed)
    return save_checkpoint(path, GCRN(SMALL))


def _report(folder):
    return json.loads((folder / "summary.json").read_text())


def _flat(summary, proc=None):
    """processor/snr/metric/stat -> number (scores pass through CSV as float32 text)."""
    return {
        (p, snr, m, k): v
        for p, d in summary.items()
        if proc in (None, p)
        for snr, ms in d.items()
        for m, st in ms.items()
        for k, v in st.items()
    }


def test_eval_reports_and_reuses_earlier_scores(mini_corpus, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(mini_corpus, corpus)
    ck = _checkpoint(tmp_path / "m.safetensors", 0)
    base = ["eval", "noisy", "bypass", str(ck), "--corpus", str(corpus), "-n", "2"]
    base += ["--snrs=-5,5", "--workers", "1"]
    first = tmp_path / "first"
    assert main(base + ["--out", str(first)]) == 0
    rep = _report(first)
    s = rep["summary"]
    for snr in ("-5", "+5"):
        assert s["noisy"][snr]["si_sdr"]["n"] == 2
        assert s["noisy"][snr]["si_sdr"]["mean"] == pytest.approx(float(snr), abs=0.5)
        for k in ("pesq", "stoi", "estoi", "si_sdr"):  # bypass: the input, latency compensated
            assert s["bypass"][snr][k]["mean"] == pytest.approx(
                s["noisy"][snr][k]["mean"], abs=1e-3
            )
    assert s[str(ck)]["-5"]["si_sdr"]["n"] == 2
    with open(first / "scores.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 3 * 2 * 2
    md = (first / "summary.md").read_text()
    assert "**Input SNR -5 dB** (2 mixtures" in md and "| bypass |" in md
    assert rep["meta"]["scored"] == ["noisy", "bypass", str(ck)]

    again = tmp_path / "again"  # everything reused: the same report, nothing scored
    assert main(base + ["--out", str(again), "--reuse", str(first)]) == 0
    assert _report(again)["meta"]["scored"] == []
    assert _flat(_report(again)["summary"]) == pytest.approx(_flat(s), rel=1e-6)

    copy = tmp_path / "shipped.safetensors"  # the same weights under another name: reused
    shutil.copyfile(ck, copy)
    renamed = ["eval", "noisy", str(copy), *base[3:]]
    assert main(renamed + ["--out", str(tmp_path / "renamed"), "--reuse", str(first)]) == 0
    assert _report(tmp_path / "renamed")["meta"]["scored"] == []
    assert _flat(_report(tmp_path / "renamed")["summary"], str(copy)) == pytest.approx(
        {(str(copy), *k[1:]): v for k, v in _flat(s, str(ck)).items()}, rel=1e-6
    )

    _checkpoint(ck, 1)  # retrained at the same path: scored again, the others reused
    third = tmp_path / "third"
    assert main(base + ["--out", str(third), "--reuse", str(first)]) == 0
    assert _report(third)["meta"]["scored"] == [str(ck)]
    assert _flat(_report(third)["summary"], "noisy") == pytest.approx(_flat(s, "noisy"), rel=1e-6)

    # a model's scores on one backend are never reused for another (int8 is not fp32)
    assert rep["meta"]["backends"] == {str(ck): "onnx"}
    int8 = tmp_path / "int8"
    assert main(base + ["--backend", "onnx-int8", "--out", str(int8), "--reuse", str(third)]) == 0
    meta = _report(int8)["meta"]
    assert meta["scored"] == [str(ck)] and meta["backends"] == {str(ck): "onnx-int8"}
    assert meta["int8_weight_bits"] in (7, 8)
    # a report from before backends were recorded: its model scores count as fp32 ONNX only
    legacy = tmp_path / "legacy"
    shutil.copytree(third, legacy)
    old = _report(legacy)
    del old["meta"]["backends"]
    (legacy / "summary.json").write_text(json.dumps(old))
    assert main(base + ["--out", str(tmp_path / "l1"), "--reuse", str(legacy)]) == 0
    assert _report(tmp_path / "l1")["meta"]["scored"] == []
    l2 = ["--backend", "onnx-int8", "--out", str(tmp_path / "l2"), "--reuse", str(legacy)]
    assert main(base + l2) == 0
    assert _report(tmp_path / "l2")["meta"]["scored"] == [str(ck)]

    capsys.readouterr()  # other mixtures, or a folder that is no report: clear errors
    other = ["eval", "noisy", "--corpus", str(corpus), "-n", "1", "--snrs", "0"]
    assert main(other + ["--out", str(tmp_path / "x"), "--reuse", str(first)]) == 2
    assert "other mixtures" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "y"), "--reuse", str(tmp_path)]) == 2
    assert "not a hushlab eval report" in capsys.readouterr().err


def test_enhance_file_keeps_rate_length_channels_and_alignment(tmp_path):
    x = speechlike(1.3, seed=3)
    src = tmp_path / "in.wav"
    sf.write(src, x, 16000, subtype="FLOAT")
    out = tmp_path / "out.wav"
    assert main(["enhance", str(src), str(out), "--model", "bypass"]) == 0
    y, sr = sf.read(out, dtype="float32")
    assert sr == 16000 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1e-4)  # latency compensated: no shift

    stereo = np.stack([x, 0.5 * x], axis=1)
    stereo = np.stack(
        [np.interp(np.arange(0, len(x), 16000 / 44100), np.arange(len(x)), c) for c in stereo.T],
        axis=1,
    ).astype(np.float32)
    sf.write(tmp_path / "st.wav", stereo, 44100)
    ck = _checkpoint(tmp_path / "m.safetensors", 0)
    assert (
        main(
            ["enhance", str(tmp_path / "st.wav"), str(tmp_path / "st_out.wav"), "--model", str(ck)]
        )
        == 0
    )
    y, sr = sf.read(tmp_path / "st_out.wav")
    assert sr == 44100 and y.shape == stereo.shape and np.all(np.isfinite(y))


def test_enhance_folder_recurses_and_lists_bad_files(tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    sf.write(src / "a.wav", speechlike(0.7, seed=1), 16000)
    sf.write(src / "sub" / "b.flac", speechlike(0.5, seed=2), 16000)
    (src / "sub" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(src / "empty.wav", np.zeros(0, np.float32), 16000)
    nan = speechlike(0.4, seed=4)
    nan[100] = np.nan
    sf.write(src / "nan.wav", nan, 16000, subtype="FLOAT")
    out = tmp_path / "out"
    assert main(["enhance", str(src), str(out), "--model", "bypass"]) == 1
    assert sf.info(out / "a.wav").frames == int(0.7 * 16000)
    assert sf.info(out / "sub" / "b.flac").frames == int(0.5 * 16000)
    err = capsys.readouterr().err
    assert "3 file(s) could not be processed" in err
    for name in ("broken.wav", "empty.wav", "nan.wav"):
        assert name in err
    assert not (out / "sub" / "broken.wav").exists()


def test_enhance_clear_errors(tmp_path, capsys):
    assert main(["enhance", str(tmp_path / "missing.wav"), str(tmp_path / "o.wav")]) == 2
    assert "no such file" in capsys.readouterr().err
    sf.write(tmp_path / "a.wav", speechlike(0.3), 16000)
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a checkpoint")
    assert (
        main(["enhance", str(tmp_path / "a.wav"), str(tmp_path / "o.wav"), "--model", str(bad)])
        == 2
    )
    assert "bad.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_eval_on_the_real_test_split(mini_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(mini_corpus, corpus)
    out = tmp_path / "real"
    args = ["eval", "noisy", "bypass", "--corpus", str(corpus), "--split", "real-test", "-n", "3"]
    assert main(args + ["--snrs=-5", "--workers", "1", "--out", str(out)]) == 0
    rep = _report(out)
    assert rep["meta"]["split"] == "real-test"
    assert rep["summary"]["noisy"]["-5"]["si_sdr"]["n"] == 3
    mixes = json.loads((corpus / "mixtures" / "real-test.json").read_text())["mixtures"]
    # only real-test speakers and noise files, never another split's
    assert {m["speech"].split("/")[1] for m in mixes} == {"real-test"}
    assert {m["noise"].split("/")[1] for m in mixes} == {"real-test"}


def test_eval_on_real_voices_uses_real_valid_speakers_under_other_talkers(mini_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(mini_corpus, corpus)
    out = tmp_path / "voices"
    args = ["eval", "noisy", "--corpus", str(corpus), "--split", "real-voices", "-n", "2"]
    assert main(args + ["--snrs=0", "--workers", "1", "--out", str(out)]) == 0
    assert _report(out)["summary"]["noisy"]["+0"]["si_sdr"]["n"] == 2
    mixes = json.loads((corpus / "mixtures" / "real-voices.json").read_text())["mixtures"]
    assert {m["speech"].split("/")[1] for m in mixes} == {"real-valid"}
    assert {tuple(m["noise"].split("/")[1:3]) for m in mixes} == {("real-voices", "warzone2100")}


def test_enhance_keeps_a_float_file_float(tmp_path):
    x = (speechlike(1.5, 16000) * 12).astype(np.float32)  # peaks well above full scale
    assert np.max(np.abs(x)) > 1.2
    src, dst = tmp_path / "loud.wav", tmp_path / "out.wav"
    sf.write(src, x, 16000, subtype="FLOAT")
    assert main(["enhance", str(src), str(dst), "--model", "bypass"]) == 0
    y, _ = sf.read(dst, dtype="float32")
    assert sf.info(str(dst)).subtype == "FLOAT"
    np.testing.assert_allclose(y, x, atol=1e-3 * np.max(np.abs(x)))
    pcm = tmp_path / "pcm.wav"  # a 24-bit file stays 24-bit
    sf.write(pcm, x / 20, 16000, subtype="PCM_24")
    assert main(["enhance", str(pcm), str(tmp_path / "o24.wav"), "--model", "bypass"]) == 0
    assert sf.info(str(tmp_path / "o24.wav")).subtype == "PCM_24"


def test_paired_differences_cancel_what_mixtures_share():
    from training.evaluate import paired_differences, paired_markdown

    rng = np.random.default_rng(0)
    hard = rng.normal(0, 5, 50)  # per-mixture difficulty, shared by both processors
    rows = []
    for i, h in enumerate(hard):
        for proc, gain in (("base", 0.0), ("better", 0.3), ("same", 0.0)):
            noise = rng.normal(0, 0.05)
            rows.append({"processor": proc, "id": f"m{i}", "snr": -5.0, "si_sdr": h + gain + noise})
    d = paired_differences(rows, "base")
    better = d["better"]["-5"]["si_sdr"]
    assert better["mean"] == pytest.approx(0.3, abs=0.03) and better["lo"] > 0.2
    same = d["same"]["-5"]["si_sdr"]
    assert same["lo"] < 0 < same["hi"]  # no difference: the interval straddles 0
    md = paired_markdown(d, "base", ["better", "same"])
    assert f"| better | {better['mean']:+.2f}*" in md and "| same |" in md and "base" not in d
    # unpaired, the shared difficulty would swamp it: the 95 % CI of each mean is ~ +-1.4 dB
    assert 1.96 * np.std(hard) / np.sqrt(50) > 1.0


def test_eval_paired_option(mini_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(mini_corpus, corpus)
    args = ["eval", "noisy", "bypass", "--corpus", str(corpus), "-n", "3", "--snrs=0"]
    args += ["--workers", "1", "--out", str(tmp_path / "p"), "--paired", "noisy"]
    assert main(args) == 0
    rep = _report(tmp_path / "p")
    diff = rep["paired"]["differences"]["bypass"]["+0"]["si_sdr"]
    assert abs(diff["mean"]) < 0.05 and diff["n"] == 3
    assert (tmp_path / "p" / "paired.md").exists()
    assert main(args[:-1] + ["rnnoise-not-scored"]) == 2


@pytest.mark.parametrize("peer", ["rnnoise", "deepfilternet3", "gtcrn", "nsnet2"])
def test_every_peer_enhances_a_file(peer, tmp_path):
    x = (speechlike(2.0, 16000) + 0.02 * np.random.default_rng(0).standard_normal(32000)).astype(
        np.float32
    )
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, 16000)
    assert main(["enhance", str(src), str(dst), "--model", peer]) == 0
    y, sr = sf.read(dst, dtype="float32")
    assert sr == 16000 and len(y) == len(x) and np.all(np.isfinite(y)) and np.std(y) > 1e-3


def test_a_peers_front_end_is_part_of_what_a_report_remembers():
    from models.processor import load_processor
    from training.evaluate import processor_digest

    d = load_processor("deepfilternet3")
    assert d.resampler == "polyphase"  # chosen on real-valid
    assert processor_digest("deepfilternet3", d) == "deepfilternet3@polyphase"
    assert processor_digest("deepfilternet3@soxr", load_processor("deepfilternet3@soxr")) == (
        "deepfilternet3@soxr"
    )
    assert processor_digest("rnnoise", load_processor("rnnoise")) == "rnnoise"
