import json

import numpy as np
import pytest
import scipy.signal as ss
import torch

from training.losses import BaselineHook, neg_si_sdr
from training.train import TrainConfig, lr_at, train


def _tiny(dns_tree, out, **kw):
    cfg = TrainConfig.from_toml("training/configs/tiny.toml")
    cfg.out = str(out)
    cfg.data.clean_dir = str(dns_tree / "clean")
    cfg.data.noise_dir = str(dns_tree / "noise")
    cfg.data.valid_fraction = 0.3
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_neg_si_sdr_matches_numpy():
    from dsp.metrics import si_sdr

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(1000), rng.standard_normal(1000)
    t = neg_si_sdr(torch.tensor(a + 0.3 * b)[None], torch.tensor(a)[None]).item()
    assert abs(-t - si_sdr(a, a + 0.3 * b)) < 1e-3


def test_mr_stft_loss_is_zero_on_a_match_and_grows_with_distortion():
    from training.losses import mr_stft_loss

    rng = np.random.default_rng(1)
    ref = torch.tensor(rng.standard_normal((2, 16000)), dtype=torch.float32)
    assert mr_stft_loss(ref, ref).item() == pytest.approx(0.0, abs=1e-5)
    small = mr_stft_loss(ref + 0.05 * torch.randn_like(ref), ref).item()
    large = mr_stft_loss(ref + 0.5 * torch.randn_like(ref), ref).item()
    assert 0 < small < large
    # a lowpassed estimate (speech detail removed) costs even at equal energy
    sos = ss.butter(8, 2000, fs=16000, output="sos")
    lp = torch.tensor(ss.sosfilt(sos, ref.numpy()), dtype=torch.float32)
    lp = lp * ref.norm() / lp.norm()
    assert mr_stft_loss(lp, ref).item() > large
    est = ref.clone().requires_grad_(True)
    mr_stft_loss(est * 0.7, ref).backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0


def _voiced(seconds=2.0, sr=16000, gap=(0.8, 1.2)):
    """A harmonic 'voice' (150 Hz, 20 partials, slow vibrato) with a silent gap."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 150 * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 21))
    x[int(gap[0] * sr) : int(gap[1] * sr)] = 0
    return torch.tensor(0.1 * x / np.abs(x).max(), dtype=torch.float32)[None]


def test_perceptual_loss_is_zero_on_a_match_ignores_level_and_ranks_like_pesq():
    from pesq import pesq

    from training.losses import perceptual_loss

    ref = _voiced()
    assert perceptual_loss(ref, ref).item() == pytest.approx(0.0, abs=1e-4)
    assert perceptual_loss(0.5 * ref, ref).item() < 1e-3  # each signal's level is normalised
    noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(0))
    noise = noise * ref.norm() / noise.norm()
    losses, scores = [], []
    for snr in (20, 10, 0):
        est = ref + noise * 10 ** (-snr / 20)
        losses.append(perceptual_loss(est, ref).item())
        scores.append(pesq(16000, ref[0].numpy(), est[0].numpy(), "wb"))
    assert losses[0] < losses[1] < losses[2]
    assert scores[0] > scores[1] > scores[2]


def test_perceptual_loss_grows_with_noise_left_in_a_pause_as_pesq_falls():
    from pesq import pesq

    from training.losses import perceptual_loss

    ref = _voiced()
    noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    gap = slice(int(0.85 * 16000), int(1.15 * 16000))  # inside the voice's pause
    losses, scores = [], []
    for level in (0.001, 0.003, 0.01):
        est = ref.clone()
        est[:, gap] += level * noise[:, gap]
        losses.append(perceptual_loss(est, ref).item())
        scores.append(pesq(16000, ref[0].numpy(), est[0].numpy(), "wb"))
    assert losses[0] < losses[1] < losses[2]
    assert scores[0] > scores[1] > scores[2]
    est = torch.zeros(ref.shape, requires_grad=True)  # silence out: finite loss and gradient
    loss = perceptual_loss(est + 0.5 * ref, ref) + perceptual_loss(est, ref)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(est.grad).all()


def test_loss_weights_are_checked_by_name():
    from training.losses import make_hook

    assert make_hook("baseline", w_mrstft=0.5, w_under=1.0, w_pesq=2.0).weights == {
        "w_mrstft": 0.5,
        "w_under": 1.0,
        "w_pesq": 2.0,
    }
    with pytest.raises(ValueError, match="unknown loss weights"):
        BaselineHook(w_bogus=1.0)


def test_schedule_warms_up_and_decays():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1e-3)
    assert lr_at(0, cfg) < lr_at(9, cfg) <= 1e-3
    assert lr_at(99, cfg) < lr_at(50, cfg) < lr_at(10, cfg)


def test_config_overrides_and_errors(tmp_path):
    cfg = TrainConfig.from_toml("training/configs/tiny.toml", ["steps=7", "data.snr_min=-10"])
    assert cfg.steps == 7 and cfg.data.snr_min == -10
    from dsp.errors import UserError

    with pytest.raises(UserError, match="unknown training config"):
        TrainConfig.from_toml("training/configs/tiny.toml", ["bogus=1"])
    with pytest.raises(UserError, match="no such config"):
        TrainConfig.from_toml(tmp_path / "none.toml")


def test_init_config_fits_allows_only_added_layers():
    from training.train import init_config_fits

    plain = {"compress": 0.3, "hidden": 64, "df_taps": 0}
    assert init_config_fits(plain, {**plain, "df_taps": 4})  # the filter starts switched off
    assert init_config_fits({**plain, "df_taps": 4}, {**plain, "df_taps": 4})
    assert init_config_fits(plain, {**plain, "ssl_dim": 256, "distill_head": True})
    assert not init_config_fits({**plain, "df_taps": 4}, {**plain, "df_taps": 2})
    assert not init_config_fits({**plain, "df_taps": 4}, plain)  # a filter would be dropped
    assert not init_config_fits(plain, {**plain, "compress": 0.5})
    la = {**plain, "df_taps": 4, "lookahead": 1}
    assert init_config_fits({**plain, "df_taps": 4}, la)  # it learns the delay
    assert not init_config_fits(la, {**plain, "df_taps": 4})  # a look-ahead would be dropped
    assert not init_config_fits(la, {**la, "lookahead": 2})


def test_a_lookahead_model_is_trained_and_validated_on_the_delayed_target():
    """The hook and validation compare a look-ahead model's output with the clean signal delayed
    by its look-ahead: its starting point (the delayed identity) scores the delayed noisy."""
    from models.gcrn import GCRN, GCRNConfig
    from training.losses import target_of

    m = GCRN(GCRNConfig(df_taps=2, lookahead=1)).eval()
    hop = m.config.hop
    clean = torch.randn(2, 16000)
    t = target_of(m, clean)
    assert t.shape == clean.shape and t[:, :hop].abs().max() == 0
    assert torch.equal(t[:, hop:], clean[:, :-hop])
    assert target_of(GCRN(GCRNConfig()), clean) is clean
    # the model starts as the identity delayed one hop: on noisy == clean its loss is ~0 against
    # the delayed target (a signal that starts after the first frame: frame 0's target holds
    # the first 80 samples, which the delayed identity does not give)
    clean[:, : m.config.win] = 0
    hook = BaselineHook()
    with torch.no_grad():
        aligned = hook.compute_loss(m, (clean, clean))[0].item()
        plain = BaselineHook().compute_loss(GCRN(GCRNConfig(df_taps=2)).eval(), (clean, clean))
    assert aligned < 1e-3 and plain[0].item() < 1e-3


@pytest.mark.slow
def test_tiny_training_loss_falls_and_resumes(dns_tree, tmp_path):
    from models.checkpoint import load_checkpoint
    from training.data import TrainMixtures

    cfg = _tiny(dns_tree, tmp_path / "run")
    ds = TrainMixtures(cfg.data, 8, seed=99)
    batch = [torch.stack(t) for t in zip(*[ds[i] for i in range(8)], strict=True)]
    hook = BaselineHook()
    torch.manual_seed(cfg.seed)
    from models.registry import build_model

    before = hook.compute_loss(build_model("gcrn", cfg.model_config).eval(), batch)[0].item()
    cfg.steps = 20
    train(cfg)
    hist = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert hist[-1]["step"] == 20
    # resume: a longer run continues from step 20 instead of starting again
    cfg.steps = 40
    train(cfg)
    hist = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [20, 40]
    model, meta = load_checkpoint(tmp_path / "run" / "latest.safetensors")
    after = hook.compute_loss(model, batch)[0].item()
    assert after < 0.95 * before, (before, after)
    assert meta["train_config"]["steps"] == 40 and "valid_si_sdr" in meta["metrics"]


@pytest.mark.slow
def test_distributed_two_cpu_processes(dns_tree, tmp_path):
    """The same loop under torchrun: two CPU processes, gloo backend, the tiny config."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "app.cli",
        "train",
        "--config",
        "training/configs/tiny.toml",
        "--out",
        str(out),
        "steps=6",
        "valid_every=6",
        "ckpt_every=3",
        "threads=1",
        f'data.clean_dir="{dns_tree / "clean"}"',
        f'data.noise_dir="{dns_tree / "noise"}"',
        "data.valid_fraction=0.3",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    hist = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [6]
    assert (out / "best.safetensors").exists()


def test_schedule_is_paced_by_steps_alone():
    """max_minutes pauses a run; it never moves the schedule (the same run on any machine)."""
    a = TrainConfig(steps=10000, warmup_steps=10, lr=1e-3)
    b = TrainConfig(steps=10000, warmup_steps=10, lr=1e-3, max_minutes=2.0)
    assert [lr_at(s, a) for s in (0, 100, 5000, 9999)] == [
        lr_at(s, b) for s in (0, 100, 5000, 9999)
    ]
    assert lr_at(10000, a) == pytest.approx(a.lr * a.min_lr_ratio)


@pytest.mark.slow
def test_max_minutes_stops_cleanly_with_a_checkpoint(dns_tree, tmp_path):
    cfg = _tiny(dns_tree, tmp_path / "run", steps=1000, max_minutes=1e-4, log_every=5)
    train(cfg)
    hist = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [5]  # validated and saved where it stopped
    st = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert st["step"] == 5 and st["train_seconds"] > 0
    assert (tmp_path / "run" / "best.safetensors").exists()


@pytest.mark.slow
def test_init_starts_from_a_checkpoint_and_checks_its_config(dns_tree, tmp_path):
    from dsp.errors import UserError
    from models.checkpoint import load_checkpoint, save_checkpoint
    from models.registry import build_model

    cfg = _tiny(dns_tree, tmp_path / "run", steps=1, valid_every=1, warmup_steps=1)
    torch.manual_seed(123)
    src = build_model("gcrn", cfg.model_config)
    save_checkpoint(tmp_path / "src.safetensors", src)
    cfg.init = str(tmp_path / "src.safetensors")
    cfg.lr = 1e-12  # one step that barely moves: the weights must be the source's
    train(cfg)
    got, _ = load_checkpoint(tmp_path / "run" / "latest.safetensors")
    for (k, a), b in zip(src.named_parameters(), got.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k  # (BatchNorm running stats do move)
    other = _tiny(dns_tree, tmp_path / "run2", steps=1, model_config={"channels": [8, 8, 8, 8, 8]})
    other.init = str(tmp_path / "src.safetensors")
    with pytest.raises(UserError, match="model config differs"):
        train(other)
    # a model with deep filtering starts from one without: the same weights, the filter off
    df = _tiny(dns_tree, tmp_path / "run3", steps=1, valid_every=1, warmup_steps=1, lr=1e-12)
    df.model_config = {**cfg.model_config, "df_taps": 2}
    df.init = str(tmp_path / "src.safetensors")
    train(df)
    got, _ = load_checkpoint(tmp_path / "run3" / "latest.safetensors")
    assert got.config.df_taps == 2
    mine = dict(got.named_parameters())
    for k, a in src.named_parameters():
        b = mine[k]
        if a.shape == b.shape:
            assert torch.allclose(a, b, atol=1e-6), k
        else:  # the last decoder layers: the source's channels kept, the filter's at ~0
            assert b.abs().max() > 0 and torch.allclose(b.abs().sum(), a.abs().sum(), rtol=1e-3)
    # but not the other way round, nor between different numbers of taps
    back = _tiny(dns_tree, tmp_path / "run4", steps=1, valid_every=1, warmup_steps=1)
    back.model_config = {**cfg.model_config, "df_taps": 3}
    back.init = str(tmp_path / "run3" / "latest.safetensors")
    with pytest.raises(UserError, match="model config differs"):
        train(back)


def test_under_term_costs_removed_speech_not_residual_noise():
    from dsp.stft import DEFAULT_GEOMETRY
    from training.losses import enhancement_loss

    torch.manual_seed(0)
    clean = torch.randn(1, 2, 10, 257)
    wav = torch.randn(1, 3520)
    over = clean * 1.5  # leaves extra energy (residual noise)
    under = clean * 0.5  # removes speech
    _, lo = enhancement_loss(over, clean, wav, DEFAULT_GEOMETRY)
    _, lu = enhancement_loss(under, clean, wav, DEFAULT_GEOMETRY)
    assert lo["l_under"] == 0.0 and lu["l_under"] > 0
    base, _ = enhancement_loss(under, clean, wav, DEFAULT_GEOMETRY)
    heavier, _ = enhancement_loss(under, clean, wav, DEFAULT_GEOMETRY, w_under=1.0)
    assert heavier.item() == pytest.approx(base.item() + lu["l_under"], rel=1e-5)


def test_pesq_term_enters_the_loss_at_its_weight():
    from dsp.stft import DEFAULT_GEOMETRY, istft
    from training.losses import enhancement_loss, perceptual_loss, spectra

    clean_wav = _voiced()
    noisy_wav = clean_wav + 0.01 * torch.randn(
        clean_wav.shape, generator=torch.Generator().manual_seed(2)
    )
    est, clean = spectra(noisy_wav, clean_wav, DEFAULT_GEOMETRY)
    base, logs = enhancement_loss(est, clean, clean_wav, DEFAULT_GEOMETRY)
    assert "l_pesq" not in logs
    heavier, logs = enhancement_loss(est, clean, clean_wav, DEFAULT_GEOMETRY, w_pesq=3.0)
    est_wav = istft(torch.complex(est[:, 0], est[:, 1]), DEFAULT_GEOMETRY)
    expected = perceptual_loss(est_wav, clean_wav[..., : est_wav.shape[-1]]).item()
    assert logs["l_pesq"] == pytest.approx(expected, rel=1e-5) and expected > 1e-3
    assert heavier.item() == pytest.approx(base.item() + 3.0 * expected, rel=1e-5)


def test_ema_update_is_a_running_mean_then_exponential():
    from training.train import ema_update

    model = torch.nn.BatchNorm1d(3)
    ema = torch.nn.BatchNorm1d(3).requires_grad_(False)
    seen = []
    for n in range(4):  # below the horizon: the plain mean of the weights seen so far
        with torch.no_grad():
            model.weight.fill_(float(n + 1))
            model.running_mean.fill_(10.0 * n)
        seen.append(n + 1.0)
        ema_update(ema, model, decay=0.9, updates=n)
        assert torch.allclose(ema.weight, torch.full((3,), float(np.mean(seen))))
        assert torch.equal(ema.running_mean, model.running_mean)  # buffers follow the model
    before = ema.weight.clone()
    with torch.no_grad():
        model.weight.fill_(100.0)
    ema_update(ema, model, decay=0.9, updates=1000)  # past it: ema = 0.9 ema + 0.1 model
    assert torch.allclose(ema.weight, 0.9 * before + 10.0)


@pytest.mark.slow
def test_weight_average_is_what_validation_scores_and_checkpoints_hold(dns_tree, tmp_path):
    from dsp.errors import UserError
    from models.checkpoint import load_checkpoint
    from training.ship import write_card

    cfg = _tiny(dns_tree, tmp_path / "run", steps=10, valid_every=10, ema_decay=0.8)
    train(cfg)
    st = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    got, _ = load_checkpoint(tmp_path / "run" / "latest.safetensors")
    for k, v in got.state_dict().items():
        assert torch.equal(v, st["ema"][k]), k
    assert any(not torch.equal(st["ema"][k], st["model"][k]) for k in st["model"])
    card = write_card(tmp_path / "run", "b", tmp_path / "run" / "best.safetensors", None)
    assert "the moving average of the weights (ema_decay 0.8) with the best validation" in card
    # resuming carries the average on from the saved one
    cfg.steps = 20
    train(cfg)
    st2 = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert st2["step"] == 20
    assert any(not torch.equal(st2["ema"][k], st["ema"][k]) for k in st["ema"])
    with pytest.raises(UserError, match="ema_decay"):
        train(_tiny(dns_tree, tmp_path / "bad", steps=1, ema_decay=1.5))


def test_a_card_states_the_latency_a_lookahead_costs():
    from models.gcrn import GCRN, GCRNConfig
    from training.ship import _title

    plain = _title("b", GCRN(GCRNConfig(df_taps=2)), {"variant": "baseline"})[2]
    ahead = _title("b", GCRN(GCRNConfig(df_taps=2, lookahead=1)), {"variant": "baseline"})[2]
    assert "20 ms hop, 25 ms algorithmic latency" in plain
    assert "20 ms hop, 1 frame of look-ahead, 45 ms algorithmic latency" in ahead


def test_snr_ramp_weighs_the_si_sdr_term_by_input_snr():
    from dsp.stft import DEFAULT_GEOMETRY
    from models.gcrn import GCRN, GCRNConfig
    from training.losses import enhancement_loss, snr_ramp_weights, spectra

    rng = np.random.default_rng(3)
    clean = torch.tensor(rng.standard_normal((3, 8000)), dtype=torch.float32)
    noise = torch.tensor(rng.standard_normal((3, 8000)), dtype=torch.float32)
    gains = torch.tensor([10 ** (5 / 20), 1.0, 10 ** (-5 / 20)])[:, None]  # -5, 0, +5 dB in
    noisy = clean + noise * torch.sqrt((clean**2).sum(-1) / (noise**2).sum(-1))[:, None] * gains
    w = snr_ramp_weights(noisy, clean, -5.0, 5.0)
    assert w.tolist() == pytest.approx([0.0, 0.5, 1.0], abs=1e-4)
    assert snr_ramp_weights(noisy, clean, 0.0, 2.0).tolist() == pytest.approx([0, 0, 1], abs=1e-4)
    with pytest.raises(ValueError, match="lo < hi"):
        snr_ramp_weights(noisy, clean, 5.0, 5.0)

    # in the loss: weights of one are the plain term, zeros remove it; the log is the plain mean
    est, ref = spectra(noisy, clean, DEFAULT_GEOMETRY)
    args = (est, ref, clean, DEFAULT_GEOMETRY)
    plain, logs = enhancement_loss(*args, w_sisdr=0.01)
    ones, logs1 = enhancement_loss(*args, w_sisdr=0.01, sisdr_weights=torch.ones(3))
    off, _ = enhancement_loss(*args, w_sisdr=0.0)
    zeros, logs0 = enhancement_loss(*args, w_sisdr=0.01, sisdr_weights=torch.zeros(3))
    assert ones.item() == pytest.approx(plain.item(), rel=1e-6)
    assert zeros.item() == pytest.approx(off.item(), rel=1e-6) and plain.item() != off.item()
    assert logs1["si_sdr"] == logs0["si_sdr"] == logs["si_sdr"]
    ramped, _ = enhancement_loss(*args, w_sisdr=0.01, sisdr_weights=w)
    assert ramped.item() not in (pytest.approx(plain.item()), pytest.approx(off.item()))

    # in the hook: a batch below the ramp trains as if the term were off; a bad ramp is an error
    torch.manual_seed(0)
    model = GCRN(GCRNConfig()).eval()
    batch = (clean[:1] + 3.0 * noise[:1], clean[:1])  # about -10 dB
    on, _ = BaselineHook(w_sisdr=0.01, sisdr_snr_lo=-5.0, sisdr_snr_hi=5.0).compute_loss(
        model, batch
    )
    no, _ = BaselineHook(w_sisdr=0.0).compute_loss(model, batch)
    assert on.item() == pytest.approx(no.item(), rel=1e-6)
    with pytest.raises(ValueError, match="must be below"):
        BaselineHook(w_sisdr=0.01, sisdr_snr_lo=5.0, sisdr_snr_hi=-5.0)


def test_train_config_takes_the_si_sdr_ramp(tmp_path):
    text = (
        'name = "r"\nvariant = "baseline"\nmodel = "gcrn"\nw_sisdr = 0.002\n'
        "sisdr_snr_lo = -5.0\nsisdr_snr_hi = 5.0\n"
    )
    (tmp_path / "r.toml").write_text(text)
    cfg = TrainConfig.from_toml(str(tmp_path / "r.toml"))
    assert (cfg.sisdr_snr_lo, cfg.sisdr_snr_hi) == (-5.0, 5.0)
    assert TrainConfig().sisdr_snr_lo == TrainConfig().sisdr_snr_hi == 0.0


def test_a_pesq_failure_counts_at_the_floor_and_keeps_the_checkpoint_rankable(
    dns_tree, tmp_path, monkeypatch
):
    import dsp.metrics
    from models.registry import build_model
    from training.data import load_or_make_mixtures
    from training.losses import make_hook
    from training.train import PESQ_FLOOR, validate

    cfg = _tiny(dns_tree, tmp_path / "run", valid_mixtures=2, valid_pesq=2)
    torch.manual_seed(0)
    model = build_model("gcrn", cfg.model_config)
    mixes, root = load_or_make_mixtures(cfg.data, "valid", cfg.valid_mixtures)
    hook = make_hook("baseline")
    ok = validate(model, cfg, mixes, root, hook)
    real, calls = dsp.metrics.pesq_wb, []

    def flaky(ref, deg, sr):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("No utterances detected")
        return real(ref, deg, sr)

    monkeypatch.setattr(dsp.metrics, "pesq_wb", flaky)
    res = validate(model, cfg, mixes, root, hook)
    n = len(calls)
    assert res["valid_pesq_errors"] == 1 and np.isfinite(res["valid_pesq"])
    assert n == 6 and res["valid_pesq"] >= PESQ_FLOOR
    assert res["valid_pesq"] < ok["valid_pesq"] and res["score"] < ok["score"]
    assert res["score"] > 0.5 * ok["score"]  # still ranked on PESQ, not on SI-SDR alone
