import numpy as np
import pytest
import soundfile as sf

from dsp.errors import UserError
from dsp.mixing import snr_db
from training.data import (
    DataConfig,
    TrainMixtures,
    list_sources,
    make_mixture_list,
    render_mixture,
)


def _cfg(root, **kw):
    return DataConfig(
        clean_dir=str(root / "clean"),
        noise_dir=str(root / "noise"),
        seconds=1.0,
        valid_fraction=0.3,
        **kw,
    )


def test_dns_layout_reader(dns_tree):
    tr_s, tr_n = list_sources(_cfg(dns_tree), "train")
    va_s, va_n = list_sources(_cfg(dns_tree), "valid")
    assert len(tr_s) + len(va_s) == 12 and len(tr_n) + len(va_n) == 8
    assert not set(tr_s) & set(va_s)
    assert not set(tr_n) & set(va_n)


def test_empty_folder_is_a_clear_error(tmp_path, dns_tree):
    (tmp_path / "empty").mkdir()
    cfg = DataConfig(clean_dir=str(tmp_path / "empty"), noise_dir=str(dns_tree / "noise"))
    with pytest.raises(UserError, match="no audio files"):
        list_sources(cfg, "train")
    with pytest.raises(UserError, match="both"):
        list_sources(DataConfig(clean_dir=str(dns_tree / "clean")), "train")


def test_training_examples_are_deterministic_and_well_formed(dns_tree):
    ds = TrainMixtures(_cfg(dns_tree), length=8, seed=3)
    a = [ds[i] for i in range(4)]
    ds2 = TrainMixtures(_cfg(dns_tree), length=8, seed=3)
    b = [ds2[i] for i in range(4)]
    for (n1, c1), (n2, c2) in zip(a, b, strict=True):
        assert np.array_equal(n1.numpy(), n2.numpy()) and np.array_equal(c1.numpy(), c2.numpy())
        assert n1.shape == (16000,) and np.all(np.isfinite(n1.numpy()))
        assert np.max(np.abs(n1.numpy())) <= 1.0
    ds2.set_epoch(1)
    assert not np.array_equal(ds2[0][0].numpy(), a[0][0].numpy())


def test_training_snr_and_level_ranges(dns_tree):
    cfg = _cfg(dns_tree, p_reverb=0.0, p_two_noises=0.0, p_bandlimit=0.0, p_clip=0.0)
    ds = TrainMixtures(cfg, length=40, seed=1)
    snrs, levels = [], []
    for i in range(40):
        noisy, clean = (t.numpy() for t in ds[i])
        snrs.append(snr_db(clean, noisy - clean))
        levels.append(10 * np.log10(np.mean(noisy.astype(np.float64) ** 2)))
    assert -5.05 <= min(snrs) and max(snrs) <= 5.05
    assert min(levels) >= -45.5 and max(levels) <= -4.5


def test_fixed_mixtures_exact_snr_and_reproducible(dns_tree):
    cfg = _cfg(dns_tree)
    mixes = make_mixture_list(cfg, "train", 3, snrs=(-5.0, 0.0, 5.0), seed=1)
    assert len(mixes) == 9 and len({m["id"] for m in mixes}) == 9
    assert mixes == make_mixture_list(cfg, "train", 3, snrs=(-5.0, 0.0, 5.0), seed=1)
    for m in mixes:
        noisy, clean = render_mixture(m)
        assert abs(snr_db(clean, noisy - clean) - m["snr"]) < 0.01
        n2, c2 = render_mixture(m)
        assert np.array_equal(noisy, n2)


def test_folder_split_survives_a_move_and_is_never_empty(dns_tree, tmp_path):
    import shutil

    from training.data import split_files

    moved = tmp_path / "elsewhere"
    shutil.copytree(dns_tree, moved)
    a = [p.relative_to(dns_tree) for p in list_sources(_cfg(dns_tree), "valid")[0]]
    b = [p.relative_to(moved) for p in list_sources(_cfg(moved), "valid")[0]]
    assert a == b and a
    files = [tmp_path / f"f{i}.wav" for i in range(3)]
    assert len(split_files(files, str(tmp_path), "valid", 0.0)) == 1  # never empty
    assert len(split_files(files, str(tmp_path), "train", 1.0)) == 1


def test_real_speech_share_weights_sources(mini_corpus):
    from pathlib import Path

    from training.data import real_speech_weights

    paths = [Path(f"speech/train/piper/p{i}.flac") for i in range(6)]
    paths += [Path(f"speech/train/klettres/k{i}.flac") for i in range(3)]
    paths += [Path(f"speech/train/asterisk/a{i}.flac") for i in range(1)]
    w = real_speech_weights(paths, 0.6)
    assert w[:6].sum() == pytest.approx(0.4) and w[6:].sum() == pytest.approx(0.6)
    assert w[6:9].sum() == pytest.approx(0.3) and w[9] == pytest.approx(0.3)  # per source
    assert real_speech_weights(paths, 0.0) is None
    assert real_speech_weights(paths[:6], 0.6) is None  # all of one kind
    ds = TrainMixtures(DataConfig(corpus=str(mini_corpus), seconds=1.0), 4, seed=0)
    assert ds.speech.weights is None  # the share is off by default


def test_interfering_talker_is_noise_and_leaves_other_configs_unchanged(dns_tree):
    from training.data import AudioPool, add_talker

    off = dict(p_reverb=0.0, p_two_noises=0.0, p_bandlimit=0.0, p_clip=0.0)
    plain = TrainMixtures(_cfg(dns_tree, **off), length=4, seed=5)
    zero = TrainMixtures(_cfg(dns_tree, p_talker=0.0, **off), length=4, seed=5)
    talk = TrainMixtures(_cfg(dns_tree, p_talker=1.0, **off), length=4, seed=5)
    # p_talker = 0 draws nothing: the same examples as before the option existed
    assert np.array_equal(plain[0][0].numpy(), zero[0][0].numpy())
    for i in range(4):
        noisy, clean = (t.numpy() for t in talk[i])
        # the talker is part of the noise: the SNR range still holds, the target is one voice
        assert -5.05 <= snr_db(clean, noisy - clean) <= 5.05
    # the talker comes from another file than the target, at -5 to +5 dB against the noise
    pool = AudioPool(list_sources(_cfg(dns_tree), "train")[0])
    rng = np.random.default_rng(0)
    v = (rng.standard_normal(16000) * 0.1).astype(np.float32)
    target = pool.get(0)[:16000]
    for _ in range(10):
        out = add_talker(v, pool, target, 0, rng)
        t = out - v
        ratio = 10 * np.log10(
            np.mean(t.astype(np.float64) ** 2) / np.mean(v.astype(np.float64) ** 2)
        )
        assert -5.1 <= ratio <= 5.1
        assert not np.allclose(t[: len(target)], target * (t.std() / target.std()), atol=1e-3)


def test_kept_talker_joins_the_target_and_leaves_other_configs_unchanged(dns_tree, tmp_path):
    from training.data import AudioPool, make_example

    off = dict(p_reverb=0.0, p_two_noises=0.0, p_bandlimit=0.0, p_clip=0.0)
    plain = TrainMixtures(_cfg(dns_tree, **off), length=4, seed=5)
    zero = TrainMixtures(_cfg(dns_tree, p_kept_talker=0.0, **off), length=4, seed=5)
    assert np.array_equal(plain[0][0].numpy(), zero[0][0].numpy())  # 0 draws nothing
    # two "voices" (tones at 440 and 1000 Hz) and white noise: with the option on, both tones
    # are in the clean target and neither is in what the model is asked to remove
    t = np.arange(2 * 16000) / 16000
    for name, f in (("a", 440.0), ("b", 1000.0)):
        sf.write(tmp_path / f"{name}.wav", 0.3 * np.sin(2 * np.pi * f * t), 16000)
    sf.write(tmp_path / "n.wav", 0.1 * np.random.default_rng(0).standard_normal(len(t)), 16000)
    speech = AudioPool([tmp_path / "a.wav", tmp_path / "b.wav"])
    noise = AudioPool([tmp_path / "n.wav"])
    cfg = DataConfig(seconds=1.0, p_kept_talker=1.0, level_min=-20, level_max=-20, **off)

    def tone_db(x, f):
        spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
        return 10 * np.log10(spec[int(f)] / np.median(spec) + 1e-12)  # 1 Hz bins (1 s)

    rng = np.random.default_rng(3)
    for _ in range(6):
        noisy, clean = make_example(speech, noise, cfg, rng)
        for f in (440.0, 1000.0):
            assert tone_db(clean, f) > 40  # both voices are the target
            assert tone_db(noisy - clean, f) < 20  # the residual is the noise alone
        assert -5.05 <= snr_db(clean, noisy - clean) <= 5.05


def test_drop_noise_leaves_families_or_groups_out_of_training(mini_corpus):
    from pathlib import Path

    from training.data import without_noise

    paths = [
        Path("noise/train/hedgewars/voices_00001.flac"),
        Path("noise/train/hedgewars/music_00002.flac"),
        Path("noise/train/synthetic/babble_train_0001.flac"),
        Path("noise/train/synthetic/white_train_0001.flac"),
    ]
    assert without_noise(paths, ()) == paths
    assert without_noise(paths, ["voices", "babble"]) == [paths[1], paths[3]]
    assert without_noise(paths, ["hedgewars:music"]) == [paths[0], paths[2], paths[3]]
    with pytest.raises(UserError, match="no noise"):
        without_noise(paths, ["voices", "babble", "music", "white"])
    ds = TrainMixtures(DataConfig(corpus=str(mini_corpus), seconds=1.0, drop_noise=("hum",)), 4)
    assert ds.noise.paths and all("hum" not in p.name for p in ds.noise.paths)
    every = TrainMixtures(DataConfig(corpus=str(mini_corpus)), 4).noise.paths
    assert len(ds.noise.paths) < len(every)


def test_noise_keys_that_match_nothing_are_named(mini_corpus, caplog):
    from pathlib import Path

    from training.data import unmatched_noise_keys

    paths = [
        Path("noise/train/hedgewars/voices_00001.flac"),
        Path("noise/train/synthetic/babble_train_0001.flac"),
    ]
    keys = ["voices", "synthetic:babble", "musics", "hedgewars:babble"]
    assert unmatched_noise_keys(paths, keys) == ["hedgewars:babble", "musics"]
    assert unmatched_noise_keys(paths, ["babble", "hedgewars:voices"]) == []
    with caplog.at_level("WARNING", logger="training.data"):
        TrainMixtures(DataConfig(corpus=str(mini_corpus), seconds=1.0, drop_noise=("hum",)), 4)
    assert "change nothing" not in caplog.text
    cfg = DataConfig(corpus=str(mini_corpus), seconds=1.0, noise_weights={"hmu": 0.5})
    with caplog.at_level("WARNING", logger="training.data"):
        TrainMixtures(cfg, 4)
    assert "hmu name no noise family" in caplog.text and "hum" in caplog.text


def test_speed_and_eq_keep_lengths_and_ranges_and_leave_other_configs_unchanged(dns_tree):
    off = dict(p_reverb=0.0, p_two_noises=0.0, p_bandlimit=0.0, p_clip=0.0)
    plain = TrainMixtures(_cfg(dns_tree, **off), length=6, seed=9)
    zero = TrainMixtures(_cfg(dns_tree, p_speed=0.0, p_eq=0.0, **off), length=6, seed=9)
    aug = TrainMixtures(_cfg(dns_tree, p_speed=1.0, p_eq=1.0, **off), length=6, seed=9)
    # 0 draws nothing: the same examples as before the options existed
    assert np.array_equal(plain[0][0].numpy(), zero[0][0].numpy())
    changed = 0
    for i in range(6):
        noisy, clean = (t.numpy() for t in aug[i])
        assert noisy.shape == clean.shape == (16000,)
        assert np.all(np.isfinite(noisy)) and np.max(np.abs(noisy)) <= 1.0
        # the SNR is set after the speech and noise are coloured: the range still holds
        assert -5.05 <= snr_db(clean, noisy - clean) <= 5.05
        changed += not np.allclose(clean, plain[i][1].numpy(), atol=1e-4)
    assert changed == 6


def test_noise_weights_scale_a_family_within_its_kind(tmp_path):
    from training.data import balanced_noise_weights

    paths = [
        tmp_path / "noise" / "train" / src / f"{fam}_{i:05d}.flac"
        for src, fam, n in (("a", "music", 2), ("a", "effects", 1), ("b", "music", 1))
        for i in range(n)
    ] + [tmp_path / "noise" / "train" / "synthetic" / f"hum_train_{i:04d}.flac" for i in range(2)]
    even = balanced_noise_weights(paths, 0.6)
    assert even[:2].sum() == pytest.approx(0.2) and even[2] == pytest.approx(0.2)
    w = balanced_noise_weights(paths, 0.6, {"music": 0.5})  # music: half the share of effects
    assert w[:4].sum() == pytest.approx(0.6) and w[4:].sum() == pytest.approx(0.4)
    assert w[2] == pytest.approx(0.3) and w[:2].sum() == pytest.approx(0.15)
    assert w[3] == pytest.approx(0.15)
    g = balanced_noise_weights(paths, 0.6, {"a:music": 0.0})  # a group, by name
    assert g[:2].sum() == 0 and g[2] == pytest.approx(0.3)
    with pytest.raises(UserError, match=">= 0"):
        balanced_noise_weights(paths, 0.6, {"music": -1})
    with pytest.raises(UserError, match="no share"):
        balanced_noise_weights(paths, 0.6, {"music": 0, "effects": 0})
