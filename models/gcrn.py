"""The compact causal GCRN (Tan & Wang 2020, in the compact form of the paper's code; PAPER.md).

Complex spectral mapping: noisy STFT real/imag [B, 2, T, 257] -> clean real/imag [B, 2, T, 257].

Every layer is written once, as a function of its input and a cache of its own past input frames,
so the offline ``forward`` over a whole sequence and the streaming ``step`` over one frame are the
same code: offline passes a zero cache and all T frames, streaming passes the cache from the state
and one frame. Time kernels are 2 frames wide and look only backwards, so output frame t depends
on input frames <= t.

Optional power-law compression (``compress`` < 1) is applied to the input spectrum and undone on
the output: the network sees |X|**c * exp(j angle X), which keeps inputs from -45 to -5 dBFS in a
range BatchNorm and the LSTMs handle well.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn

from dsp.stft import StftGeometry


@dataclass(frozen=True)
class GCRNConfig:
    channels: tuple[int, ...] = (16, 20, 28, 36, 64)
    kernel: tuple[int, int] = (2, 3)  # (time, freq)
    lstm_groups: int = 2
    lstm_layers: int = 2
    decoder_lstm: bool = True  # the encoder/decoder split: a second grouped LSTM in the decoder
    compress: float = 0.3  # power-law exponent on the spectrum magnitude; 1.0 = raw real/imag
    residual: bool = True  # heads predict a correction added to the (compressed) input spectrum
    # deep filtering (DeepFilterNet's multi-frame complex filter, causal): the decoders also give
    # per-bin complex coefficients (tanh-bounded) for the ``df_taps`` previous noisy frames, added
    # to the mapped output; 0 disables. The coefficients start at zero, so a model with taps can
    # start from the weights of one without (``adapt_state``) and compute the same function.
    df_taps: int = 0
    # look-ahead (frames): the model estimates the clean frame ``lookahead`` hops before its
    # newest input frame, so it hears that much of what follows the frame it outputs - at the
    # cost of ``lookahead`` hops of latency. Output frame t still depends on input frames <= t
    # only; the residual adds the noisy frame being estimated (from the deep filter's frame
    # cache, hence lookahead <= df_taps) and training delays the clean target to match.
    lookahead: int = 0
    # SSL hooks (PAPER.md): 0 disables; otherwise the teacher's embedding size
    ssl_dim: int = 0
    distill_head: bool = False  # Linear(bottleneck -> ssl_dim) on the encoder output
    fusion: bool = False  # project teacher embeddings into the decoder input (weighted sum)
    # STFT geometry the model was trained with
    sample_rate: int = 16000
    win: int = 400
    hop: int = 320
    n_fft: int = 512

    @property
    def geometry(self) -> StftGeometry:
        return StftGeometry(self.sample_rate, self.win, self.hop, self.n_fft)

    @property
    def freq_sizes(self) -> list[int]:
        """Frequency bins after each encoder layer (257 -> 128 -> 63 -> 31 -> 15 -> 7)."""
        sizes = [self.n_fft // 2 + 1]
        for _ in self.channels:
            sizes.append((sizes[-1] - self.kernel[1]) // 2 + 1)
        return sizes

    @property
    def bottleneck_dim(self) -> int:
        return self.channels[-1] * self.freq_sizes[-1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GCRNConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown GCRN config keys: {sorted(unknown)}")
        d = dict(d)
        for k in ("channels", "kernel"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


class CausalGatedConv(nn.Module):
    """Gated conv (a * sigmoid(b)) over [B, C, T, F] with a 2-frame causal time kernel."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], last: bool = False):
        super().__init__()
        self.kt = kernel[0]
        self.conv = nn.Conv2d(cin, 2 * cout, kernel, stride=(1, 2))
        self.norm = nn.Identity() if last else nn.BatchNorm2d(cout)
        self.act = nn.Identity() if last else nn.ELU()

    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T, F], cache [B, C, kt-1, F] (past frames) -> (y [B, C', T, F'], cache)."""
        xc = torch.cat([cache, x], dim=2)  # [B, C, T + kt - 1, F]
        a, b = self.conv(xc).chunk(2, dim=1)
        y = self.act(self.norm(a * torch.sigmoid(b)))
        return y, xc[:, :, -(self.kt - 1) :]


class CausalGatedUpconv(nn.Module):
    """Gated frequency upsampling by 2 with a 2-frame causal time kernel (the decoder's
    "transposed conv"), computed as a sub-pixel convolution: one ordinary conv with a (2, 2)
    kernel over the frequency-padded input gives, at each input bin j, the outputs for bins 2j and
    2j + 1, which are interleaved and cropped to ``f_out``. It covers every stride-2, width-3
    transposed conv (and slightly more) and runs on the fast ordinary-conv path: about 2x faster
    to train on CPU than ``ConvTranspose2d``."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], f_out: int, last: bool):
        super().__init__()
        self.kt = kernel[0]
        self.cout = cout
        self.f_out = f_out
        self.conv = nn.Conv2d(cin, 4 * cout, (self.kt, 2))  # 2 phases x (value, gate)
        self.norm = nn.Identity() if last else nn.BatchNorm2d(cout)
        self.act = nn.Identity() if last else nn.ELU()

    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T, F], cache [B, C, kt-1, F] -> (y [B, C', T, f_out], cache)."""
        b, _, t, f = x.shape
        xc = torch.cat([cache, x], dim=2)  # [B, C, T + kt - 1, F]
        z = self.conv(nn.functional.pad(xc, (1, 1)))  # [B, 2 * 2C', T, F + 1]
        z = z.view(b, 2, 2 * self.cout, t, f + 1).permute(0, 2, 3, 4, 1)
        z = z.reshape(b, 2 * self.cout, t, 2 * (f + 1))[..., : self.f_out]
        a, g = z.chunk(2, dim=1)
        y = self.act(self.norm(a * torch.sigmoid(g)))
        return y, xc[:, :, -(self.kt - 1) :]


class GroupedLSTM(nn.Module):
    """Grouped LSTM (Gao et al.): features split into groups, one small LSTM each, LayerNorm,
    and features interleaved between layers so the groups exchange information."""

    def __init__(self, dim: int, groups: int, layers: int):
        super().__init__()
        if dim % groups:
            raise ValueError(f"LSTM width {dim} is not divisible by {groups} groups")
        self.dim, self.groups, self.layers = dim, groups, layers
        g = dim // groups
        self.lstms = nn.ModuleList(
            nn.ModuleList(nn.LSTM(g, g, batch_first=True) for _ in range(groups))
            for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """x [B, T, D]; h, c [L * G, B, D / G] -> (y [B, T, D], h, c)."""
        b, t, _ = x.shape
        g = self.dim // self.groups
        hs, cs = [], []
        for li, (group, norm) in enumerate(zip(self.lstms, self.norms, strict=True)):
            parts = x.split(g, dim=-1)
            outs = []
            for gi, lstm in enumerate(group):
                k = li * self.groups + gi
                y, (hk, ck) = lstm(parts[gi], (h[k : k + 1], c[k : k + 1]))
                outs.append(y)
                hs.append(hk)
                cs.append(ck)
            x = norm(torch.cat(outs, dim=-1))
            if li < self.layers - 1:  # interleave: [B, T, G, g] -> [B, T, g, G]
                x = x.view(b, t, self.groups, g).transpose(2, 3).reshape(b, t, self.dim)
        return x, torch.cat(hs, 0), torch.cat(cs, 0)


@dataclass
class GCRNState:
    """Everything one stream needs between frames (tensors only; cheap to clone)."""

    enc_cache: list[torch.Tensor] = field(default_factory=list)
    dec_cache: list[torch.Tensor] = field(default_factory=list)  # [decoder][layer] flattened
    h_enc: torch.Tensor | None = None
    c_enc: torch.Tensor | None = None
    h_dec: torch.Tensor | None = None
    c_dec: torch.Tensor | None = None
    df_cache: torch.Tensor | None = None  # [B, 2, taps, F]: the last noisy frames (deep filter)

    def tensors(self) -> list[torch.Tensor]:
        out = [*self.enc_cache, *self.dec_cache, self.h_enc, self.c_enc]
        if self.h_dec is not None:
            out += [self.h_dec, self.c_dec]
        if self.df_cache is not None:
            out.append(self.df_cache)
        return out


class GCRN(nn.Module):
    name = "gcrn"

    def __init__(self, config: GCRNConfig | None = None):
        super().__init__()
        cfg = config or GCRNConfig()
        self.config = cfg
        if cfg.df_taps < 0:
            raise ValueError(f"df_taps is a number of past frames (>= 0), not {cfg.df_taps}")
        if not 0 <= cfg.lookahead <= cfg.df_taps:
            raise ValueError(
                f"lookahead is a number of frames from 0 to df_taps ({cfg.df_taps}), "
                f"not {cfg.lookahead}: the frame it estimates comes from the deep filter's cache"
            )
        ch = (2, *cfg.channels)
        fs = cfg.freq_sizes
        self.encoder = nn.ModuleList(
            CausalGatedConv(ch[i], ch[i + 1], cfg.kernel) for i in range(len(cfg.channels))
        )
        d = cfg.bottleneck_dim
        self.enc_lstm = GroupedLSTM(d, cfg.lstm_groups, cfg.lstm_layers)
        self.dec_lstm = (
            GroupedLSTM(d, cfg.lstm_groups, cfg.lstm_layers) if cfg.decoder_lstm else None
        )
        self.decoders = nn.ModuleList()
        for _ in range(2):  # real, imaginary
            layers = nn.ModuleList()
            for i in reversed(range(len(cfg.channels))):
                cin = 2 * ch[i + 1]
                cout = ch[i] if i > 0 else 1 + cfg.df_taps
                layers.append(CausalGatedUpconv(cin, cout, cfg.kernel, fs[i], last=(i == 0)))
            self.decoders.append(layers)
        self.heads = nn.ModuleList(nn.Linear(fs[0], fs[0]) for _ in range(2))
        if cfg.residual:  # start as the identity map: the noisy phase is kept from step one
            for h in self.heads:
                nn.init.zeros_(h.weight)
                nn.init.zeros_(h.bias)
        if cfg.df_taps:  # the filter starts switched off (coefficients tanh(0) = 0)
            for layers in self.decoders:
                w, b = layers[-1].conv.weight, layers[-1].conv.bias
                idx = self._df_channels(cfg.df_taps)
                with torch.no_grad():
                    w[idx] = 0.0
                    b[idx] = 0.0
        self.distill = nn.Linear(d, cfg.ssl_dim) if cfg.distill_head and cfg.ssl_dim else None
        if cfg.fusion:
            if not cfg.ssl_dim:
                raise ValueError("fusion needs ssl_dim > 0")
            self.fuse_proj = nn.Linear(cfg.ssl_dim, d)
            self.fuse_logit = nn.Parameter(torch.tensor(0.0))  # weight = sigmoid(logit)
        else:
            self.fuse_proj = None

    # -- geometry (the engine, evaluation and tests read these) ------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop(self) -> int:
        return self.config.hop

    @property
    def win(self) -> int:
        return self.config.win

    @property
    def latency_samples(self) -> int:
        """Delay of the output stream behind the input stream in hop-block processing (the
        look-ahead's hops included)."""
        cfg = self.config
        return cfg.win - cfg.hop + cfg.lookahead * cfg.hop

    # -- state --------------------------------------------------------------------------------
    def init_state(self, batch: int = 1) -> GCRNState:
        cfg = self.config
        p = next(self.parameters())
        z = dict(device=p.device, dtype=p.dtype)
        ch = (2, *cfg.channels)
        fs = cfg.freq_sizes
        kt = cfg.kernel[0] - 1
        enc = [torch.zeros(batch, ch[i], kt, fs[i], **z) for i in range(len(cfg.channels))]
        dec = []
        for _ in range(2):
            for i in reversed(range(len(cfg.channels))):
                dec.append(torch.zeros(batch, 2 * ch[i + 1], kt, fs[i + 1], **z))
        n = cfg.lstm_layers * cfg.lstm_groups
        g = cfg.bottleneck_dim // cfg.lstm_groups
        st = GCRNState(enc, dec, torch.zeros(n, batch, g, **z), torch.zeros(n, batch, g, **z))
        if self.dec_lstm is not None:
            st.h_dec = torch.zeros(n, batch, g, **z)
            st.c_dec = torch.zeros(n, batch, g, **z)
        if cfg.df_taps:
            st.df_cache = torch.zeros(batch, 2, cfg.df_taps, fs[0], **z)
        return st

    # -- deep filtering ----------------------------------------------------------------------
    @staticmethod
    def _df_channels(taps: int) -> list[int]:
        """Output channels of a last decoder layer (cout = 1 + taps) that give the filter: the
        conv's channels are laid out [phase, value/gate, channel]; channel 0 is the mapping."""
        c = 1 + taps
        return [p * 2 * c + v * c + k for p in range(2) for v in range(2) for k in range(1, c)]

    def adapt_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state dict of a model without deep filtering (otherwise this config) as this
        model's: its last decoder layers gain the filter's channels, zero, so the result
        computes what the source did. A state dict that already fits is returned as it is."""
        taps = self.config.df_taps
        own = self.state_dict()
        out = dict(state)
        for d, layers in enumerate(self.decoders):
            j = len(layers) - 1
            for name in ("weight", "bias"):
                key = f"decoders.{d}.{j}.conv.{name}"
                if key not in state or state[key].shape == own[key].shape:
                    continue
                src = state[key]
                if not taps or src.shape[0] != 4:
                    raise ValueError(f"{key}: {tuple(src.shape)} does not fit this model")
                new = torch.zeros_like(own[key])
                filt = set(self._df_channels(taps))
                new[[i for i in range(new.shape[0]) if i not in filt]] = src  # the mapping's
                out[key] = new
        return out

    def _deep_filter(
        self, y: torch.Tensor, coef: torch.Tensor, x: torch.Tensor, cache: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """y [B, 2, T, F] + sum_k coef_k * x[t - k] (complex, k = 1..taps), on the raw
        (uncompressed) noisy spectrum x [B, 2, T, F]; coef [B, 2, taps, T, F] (real, imag);
        cache [B, 2, taps, F] the frames before x. Returns (out, new cache)."""
        taps = coef.shape[2]
        t = x.shape[2]
        xc = torch.cat([cache, x], dim=2)  # [B, 2, taps + T, F]
        re, im = y[:, 0], y[:, 1]
        for k in range(1, taps + 1):
            past = xc[:, :, taps - k : taps - k + t]
            wr, wi = coef[:, 0, k - 1], coef[:, 1, k - 1]
            re = re + wr * past[:, 0] - wi * past[:, 1]
            im = im + wr * past[:, 1] + wi * past[:, 0]
        return torch.stack([re, im], dim=1), xc[:, :, t:]

    # -- the network, once --------------------------------------------------------------------
    def _compress(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config.compress
        if c == 1.0:
            return x
        mag2 = x[:, 0] ** 2 + x[:, 1] ** 2  # [B, T, F]
        scale = (mag2 + 1e-12) ** ((c - 1) / 2)
        return x * scale.unsqueeze(1)

    def _decompress(self, y: torch.Tensor) -> torch.Tensor:
        c = self.config.compress
        if c == 1.0:
            return y
        mag2 = y[:, 0] ** 2 + y[:, 1] ** 2
        scale = (mag2 + 1e-12).clamp(max=1e4) ** ((1 / c - 1) / 2)
        return y * scale.unsqueeze(1)

    def _run(
        self,
        x: torch.Tensor,
        state: GCRNState,
        ssl: torch.Tensor | None,
        base: torch.Tensor | None = None,
    ):
        """x [B, 2, T, F] (compressed domain); ``base`` the compressed frames the residual adds
        (x itself unless the model looks ahead). Returns (y [B, 2, T, F], bottleneck [B, T, D],
        new state, deep-filter coefficients [B, 2, taps, T, F] or None)."""
        b, _, t, _ = x.shape
        skips, enc_cache = [], []
        h = x
        for layer, cache in zip(self.encoder, state.enc_cache, strict=True):
            h, nc = layer(h, cache)
            skips.append(h)
            enc_cache.append(nc)
        c_last, f_last = h.shape[1], h.shape[3]
        seq = h.permute(0, 2, 1, 3).reshape(b, t, c_last * f_last)  # [B, T, 448]
        z, h_enc, c_enc = self.enc_lstm(seq, state.h_enc, state.c_enc)
        bottleneck = z
        if self.fuse_proj is not None:
            if ssl is None:
                raise ValueError("this model fuses SSL embeddings: pass ssl [B, T, ssl_dim]")
            w = torch.sigmoid(self.fuse_logit)
            z = (1 - w) * z + w * self.fuse_proj(ssl)
        new = GCRNState(enc_cache=enc_cache, h_enc=h_enc, c_enc=c_enc)
        if self.dec_lstm is not None:
            z, new.h_dec, new.c_dec = self.dec_lstm(z, state.h_dec, state.c_dec)
        d = z.reshape(b, t, c_last, f_last).permute(0, 2, 1, 3)  # [B, 64, T, 7]
        outs, coefs, dec_cache = [], [], []
        k = 0
        for layers, head in zip(self.decoders, self.heads, strict=True):
            y = d
            for j, layer in enumerate(layers):
                skip = skips[len(skips) - 1 - j]
                y, nc = layer(torch.cat([y, skip], dim=1), state.dec_cache[k])
                dec_cache.append(nc)
                k += 1
            outs.append(head(y[:, 0]))  # [B, T, F]
            if self.config.df_taps:
                coefs.append(torch.tanh(y[:, 1:]))  # [B, taps, T, F]
        new.dec_cache = dec_cache
        y = torch.stack(outs, dim=1)  # [B, 2, T, F]
        if self.config.residual:
            y = y + (x if base is None else base)
        coef = torch.stack(coefs, dim=1) if coefs else None
        return y, bottleneck, new, coef

    def _output(self, y, coef, frames, state: GCRNState, new: GCRNState) -> torch.Tensor:
        """The compressed-domain output as a spectrum, deep-filtered when the model has taps."""
        y = self._decompress(y)
        if coef is not None:
            y, new.df_cache = self._deep_filter(y, coef, frames, state.df_cache)
        return y

    def forward(
        self, x: torch.Tensor, ssl: torch.Tensor | None = None, return_bottleneck: bool = False
    ):
        """Whole-sequence enhancement: noisy [B, 2, T, F] real/imag -> clean estimate, same shape.

        With ``return_bottleneck`` also returns the encoder output [B, T, 448] (the SSL hook)."""
        state = self.init_state(x.shape[0])
        y, bottleneck, new, coef = self._run(
            self._compress(x), state, ssl, self._estimated_frames(x, state)
        )
        y = self._output(y, coef, x, state, new)
        return (y, bottleneck) if return_bottleneck else y

    def _estimated_frames(self, x: torch.Tensor, state: GCRNState) -> torch.Tensor | None:
        """With look-ahead L, the compressed noisy frames t - L that the residual adds for
        input frames t (from the deep filter's cache of earlier frames); None without."""
        la = self.config.lookahead
        if not la:
            return None
        taps, t = self.config.df_taps, x.shape[2]
        # frame t - L: the cache's last L frames, then the input's frames but the last L
        return self._compress(torch.cat([state.df_cache[:, :, taps - la :], x], dim=2)[:, :, :t])

    def step(
        self,
        frame: torch.Tensor,
        state: GCRNState,
        ssl: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, GCRNState]:
        """One frame: [B, 2, 1, F] -> ([B, 2, 1, F], new state). Equal to ``forward`` frame t."""
        base = self._estimated_frames(frame, state)
        y, _, new, coef = self._run(self._compress(frame), state, ssl, base)
        return self._output(y, coef, frame, state, new), new

    def predict_ssl(self, bottleneck: torch.Tensor) -> torch.Tensor:
        if self.distill is None:
            raise ValueError("this model has no distillation head")
        return self.distill(bottleneck)

    def inference_parameters(self) -> int:
        """Parameters used at inference (the distillation head is dropped)."""
        n = sum(p.numel() for p in self.parameters())
        if self.distill is not None:
            n -= sum(p.numel() for p in self.distill.parameters())
        return n
