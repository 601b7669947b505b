import numpy as np
import pytest
import torch

from dsp.stft import (
    DEFAULT_GEOMETRY as G,
)
from dsp.stft import (
    StreamingIstft,
    StreamingStft,
    istft,
    sqrt_tukey_window,
    stft,
    window,
)


def test_window_squares_overlap_add_to_one():
    w2 = window(G) ** 2
    total = np.zeros(G.hop * 10 + G.win)
    for k in range(11):
        total[k * G.hop : k * G.hop + G.win] += w2
    interior = total[G.win : G.hop * 10]
    assert np.max(np.abs(interior - 1.0)) < 1e-12


def test_periodic_window_is_not_the_symmetric_one():
    # The symmetric Tukey (sym=True) leaves a ~0.06 COLA error; ours must be the periodic one.
    import scipy.signal

    per = scipy.signal.windows.tukey(G.win, 0.4, sym=False)
    assert np.allclose(sqrt_tukey_window(G.win, 0.4) ** 2, per, atol=1e-12)


@pytest.mark.parametrize("n", [400, 401, 719, 720, 721, 16000, 16000 * 3 + 17])
def test_frame_count(n):
    x = torch.randn(n, dtype=torch.float64)
    assert stft(x).shape == (G.n_frames(n), G.n_bins)
    assert G.n_frames(n) == (n - 400) // 320 + 1


def test_too_short_signal_is_a_clear_error():
    with pytest.raises(ValueError, match="shorter than one window"):
        stft(torch.zeros(399))


def test_perfect_reconstruction_interior():
    torch.manual_seed(0)
    x = torch.randn(2, 16000 * 2, dtype=torch.float64)
    y = istft(stft(x))
    n = y.shape[-1]
    err = (y[..., G.overlap : n - G.overlap] - x[..., G.overlap : n - G.overlap]).abs().max()
    assert err < 1e-5


def test_parity_with_torch_stft():
    torch.manual_seed(1)
    x = torch.randn(16000, dtype=torch.float64)
    w = torch.zeros(G.n_fft, dtype=torch.float64)
    w[: G.win] = torch.as_tensor(window(G))
    xp = torch.nn.functional.pad(x, (0, G.n_fft - G.win))
    ref = torch.stft(
        xp,
        n_fft=G.n_fft,
        hop_length=G.hop,
        win_length=G.n_fft,
        window=w,
        center=False,
        return_complex=True,
    ).T  # [T, F]
    ours = stft(x)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 1e-9


def test_streaming_equals_offline():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(16000 * 2).astype(np.float32)
    s, i = StreamingStft(G), StreamingIstft(G)
    specs, outs = [], []
    for k in range(len(x) // G.hop):
        spec = s.push(x[k * G.hop : (k + 1) * G.hop])
        specs.append(spec)
        outs.append(i.push(spec))
    specs = np.stack(specs)
    padded = np.concatenate([np.zeros(G.overlap, np.float32), x])
    off = stft(torch.from_numpy(padded).double()).numpy()[: len(specs)]
    assert np.max(np.abs(specs - off)) < 1e-6 * max(1.0, np.max(np.abs(off)))
    y_stream = np.concatenate(outs)
    y_off = istft(torch.from_numpy(off)).numpy()[: len(y_stream)]
    assert np.max(np.abs(y_stream - y_off)) < 1e-6
    # and the stream reconstructs the input delayed by win - hop samples
    assert (
        np.max(np.abs(y_stream[G.win :] - x[G.win - G.overlap : len(y_stream) - G.overlap])) < 1e-5
    )
