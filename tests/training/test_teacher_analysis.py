"""Teacher pre-training (tiny), the voicing probe and `hushlab analyze`."""

import json

import numpy as np
import pytest

from models.teacher import STATS_FILE, Teacher
from tests.conftest import TINY_TEACHER, tiny_teacher_config
from training.analyze import FLOOR, AnalysisConfig, analyze, frame_metrics
from training.probe import fit_probe, voicing_labels
from training.teacher import TeacherConfig, train_teacher

TINY_MODEL = TINY_TEACHER


def _cfg(corpus, out, **kw):
    return tiny_teacher_config(corpus, out, **kw)


@pytest.fixture(scope="module")
def trained(mini_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher-run")
    return out, train_teacher(_cfg(mini_corpus, out))


def test_pretraining_writes_a_loadable_teacher_and_resumes(trained, mini_corpus):
    out, dest = trained
    hist = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [2, 4]
    assert all(0 <= h["valid_accuracy"] <= 1 and h["valid_contrastive"] > 0 for h in hist)
    assert (dest / "preprocessor_config.json").exists() and (dest / STATS_FILE).exists()
    t = Teacher(str(dest))  # the directory path, as for any save_pretrained teacher
    assert t.n_layers == 2 and t.dim == 32 and t.has_stats()
    # resume: more steps continue from step 4
    train_teacher(_cfg(mini_corpus, out, steps=6))
    hist = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [2, 4, 6]


def test_teacher_config_errors(tmp_path):
    from dsp.errors import UserError

    with pytest.raises(UserError, match="unknown teacher config"):
        TeacherConfig.from_toml("training/configs/teacher.toml", ["bogus=1"])
    cfg = TeacherConfig.from_toml(
        "training/configs/teacher.toml", ["steps=9", "model.hidden_size=64"]
    )
    assert cfg.steps == 9 and cfg.model == {"hidden_size": 64}


def test_voicing_labels_on_known_signal():
    sr = 16000
    t = np.arange(8000) / sr
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            np.zeros(4000),
            0.3 * np.sin(2 * np.pi * 150 * t) + 0.1 * np.sin(2 * np.pi * 300 * t),
            0.05 * rng.standard_normal(8000),
            np.zeros(4000),
        ]
    )
    x = (x + 1e-5 * rng.standard_normal(len(x))).astype(np.float32)
    lab = voicing_labels(x)
    # frame t covers [320 t, 320 t + 400): silence, then voiced, unvoiced, silence
    assert (lab[:11] == 0).all() and (lab[13:36] == 2).all() and (lab[38:61] == 1).all()
    assert (lab[64:] == 0).all()


def test_probe_fits_separable_and_not_random_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = rng.standard_normal((600, 8)) + np.eye(3, 8)[y] * 4
    assert fit_probe(x[:300], y[:300], x[300:], y[300:]) > 0.95
    noise = rng.standard_normal((600, 8))
    assert fit_probe(noise[:300], y[:300], noise[300:], y[300:]) < 0.5


def test_frame_metrics_identities():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 16)) + 3.0
    same = frame_metrics(a, a, [1, 3], 2)
    assert same["cosine"] == pytest.approx(1) and same["euclidean"] == pytest.approx(0)
    assert same["window_corr"][3] == pytest.approx(1) and same["lag_corr"][0] == pytest.approx(1)
    other = frame_metrics(a, rng.standard_normal((50, 16)) + 3.0, [1, 3], 2)
    assert abs(other["window_corr"][3]) < 0.2 and other["cosine"] > 0.8  # the offset is shared
    near = frame_metrics(a, a + 0.3 * rng.standard_normal(a.shape), [1, 3], 2)
    assert near["window_corr"][1] > 0.9 > other["window_corr"][1]


def test_analyze_writes_table_and_plots(trained, mini_corpus, tmp_path):
    _, dest = trained
    cfg = AnalysisConfig(
        teacher=str(dest),
        corpus=str(mini_corpus),
        utterances=3,
        snrs=[-5.0, 10.0],
        windows=[1, 3],
        max_lag=2,
        out=str(tmp_path),
    )
    s = analyze(cfg, progress=False)
    assert s["utterances"] == 3 and set(s["layers"]) == {0, 1, 2}
    last = s["layers"][2]
    assert set(last) == {"-5 dB", "+10 dB", FLOOR}
    assert last["+10 dB"]["cosine"] > last[FLOOR]["cosine"] - 0.05
    for f in ("analysis.md", "analysis.json", "analysis.png", "timeline.png"):
        assert (tmp_path / f).stat().st_size > 0
    assert "| -5 dB |" in (tmp_path / "analysis.md").read_text()


def test_analyze_cli(trained, mini_corpus, tmp_path, capsys):
    from app.cli import main

    _, dest = trained
    rc = main(
        [
            "analyze",
            "--teacher",
            str(dest),
            "--corpus",
            str(mini_corpus),
            "-n",
            "2",
            "--snrs",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0 and "Embedding analysis" in capsys.readouterr().out
    assert main(["analyze", "--teacher", str(dest), "--snrs", "x,y"]) == 2
    assert main(["analyze", "--teacher", str(tmp_path / "missing")]) == 2


def test_sentence_probe_runs_per_layer(trained):
    from training.probe import probe_markdown, sentence_probe

    _, dest = trained
    res = sentence_probe(Teacher(str(dest)), n_sentences=3)
    assert len(res["teacher"]) == 3 and len(res["untrained"]) == 3
    assert all(0 <= a <= 1 for a in res["teacher"] + res["untrained"] + [res["log_mel"]])
    assert "chance 0.333" in res["task"] and "| trained teacher |" in probe_markdown(res)
