"""The GCRN's streaming step rewritten for one frame at a time: what the ONNX export runs.

``GCRN.step`` is written for training-time clarity and for any number of frames; traced for one
frame it exports to about 840 ONNX nodes (290 after ONNX Runtime's optimisations), and at batch
1 a node costs about as much as its arithmetic. ``LeanStep`` computes the same function from the
same weights with fewer, larger nodes:

- BatchNorm scales are folded into the gated convolutions' value halves (only the shift is
  left, an Add); the decoder's frequency padding is the convolution's own ``pads``;
- the real and imaginary decoders run as one: their first layers share the input, so their
  weights are stacked; later layers are one grouped convolution (``groups=2``);
- the gating (value * sigmoid(gate)) runs before the sub-pixel interleave, on whole tensors;
- one-frame reshapes replace permutes where a size-1 axis moves, and a time cache of one frame
  is the frame itself (no Slice);
- the grouped LSTMs read their states with one Split per tensor, and the interleave between
  layers is one Gather.

``tests/models/test_step_graph.py`` checks it against ``GCRN.step`` frame by frame.
"""

from __future__ import annotations

import torch
from torch import nn

from models.gcrn import GCRN, CausalGatedConv, CausalGatedUpconv, GroupedLSTM


def _bn_affine(norm: nn.Module, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode BatchNorm2d (or Identity) as y = s * x + t, per channel."""
    if isinstance(norm, nn.BatchNorm2d):
        s = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        return s, norm.bias - norm.running_mean * s
    return torch.ones(channels), torch.zeros(channels)


class _Enc(nn.Module):
    """One encoder layer: conv over [previous frame, frame], value * sigmoid(gate) with the
    BatchNorm scale folded into the value half, shift, ELU."""

    def __init__(self, layer: CausalGatedConv):
        super().__init__()
        conv = layer.conv
        cout = conv.out_channels // 2
        s, t = _bn_affine(layer.norm, cout)
        w, b = conv.weight.detach().clone(), conv.bias.detach().clone()
        w[:cout] *= s[:, None, None, None]
        b[:cout] *= s
        self.conv = nn.Conv2d(conv.in_channels, 2 * cout, conv.kernel_size, stride=conv.stride)
        self.conv.weight.data, self.conv.bias.data = w, b
        self.kt = layer.kt
        self.register_buffer("shift", t.detach().view(1, cout, 1, 1).clone())
        self.has_norm = isinstance(layer.norm, nn.BatchNorm2d)
        self.elu = not isinstance(layer.act, nn.Identity)

    def forward(self, x, cache):
        xc = torch.cat([cache, x], dim=2)
        a, g = self.conv(xc).chunk(2, dim=1)
        y = a * torch.sigmoid(g)
        if self.has_norm:
            y = y + self.shift
        if self.elu:
            y = nn.functional.elu(y)
        return y, (x if self.kt == 2 else xc[:, :, 1:])


class _Dec(nn.Module):
    """One decoder layer of both decoders (real, imaginary) at once. Output channels are laid
    out [decoder, value/gate, phase, channel]; the gating runs on that layout and only the
    gated result is interleaved into frequency."""

    def __init__(self, pair: tuple[CausalGatedUpconv, CausalGatedUpconv], first: bool):
        super().__init__()
        a = pair[0]
        self.kt, self.cout, self.f_out = a.kt, a.cout, a.f_out
        self.first = first
        cin = a.conv.in_channels
        c = self.cout
        ws, bs, shifts = [], [], []
        for layer in pair:
            s, t = _bn_affine(layer.norm, c)
            # original output channel = phase * 2C + vg * C + ch  ->  [vg, phase, ch]
            w = layer.conv.weight.detach().view(2, 2, c, cin, self.kt, 2).transpose(0, 1)
            b = layer.conv.bias.detach().view(2, 2, c).transpose(0, 1)
            w, b = w.clone(), b.clone()
            w[0] *= s[None, :, None, None, None]
            b[0] *= s[None, :]
            ws.append(w.reshape(4 * c, cin, self.kt, 2))
            bs.append(b.reshape(4 * c))
            shifts.append(t.detach())
        groups = 1 if first else 2
        self.conv = nn.Conv2d(
            cin * (1 if first else 2), 8 * c, (self.kt, 2), padding=(0, 1), groups=groups
        )
        self.conv.weight.data = torch.cat(ws, 0)
        self.conv.bias.data = torch.cat(bs, 0)
        # [1, decoder, 1 (vg), 1 (phase), C, 1, 1]
        self.register_buffer("shift", torch.stack(shifts).view(1, 2, 1, 1, c, 1, 1).clone())
        self.has_norm = isinstance(a.norm, nn.BatchNorm2d)
        self.elu = not isinstance(a.act, nn.Identity)

    def forward(self, y, skip, cache):
        """y: the bottleneck [1, C, 1, F] (first layer) or both decoders' previous outputs
        [1, 2C, 1, F]; skip [1, C, 1, F] -> ([1, 2C', 1, f_out], new cache)."""
        if self.first:
            xin = torch.cat([y, skip], dim=1)
        else:
            y0, y1 = y.chunk(2, dim=1)
            xin = torch.cat([y0, skip, y1, skip], dim=1)
        xc = torch.cat([cache, xin], dim=2)
        t, f = xin.shape[2], xin.shape[3]
        c = self.cout
        z = self.conv(xc).view(1, 2, 2, 2, c, t, f + 1)  # [1, dec, vg, phase, C, T, F + 1]
        a, g = z.chunk(2, dim=2)
        out = a * torch.sigmoid(g)
        if self.has_norm:
            out = out + self.shift
        if self.elu:
            out = nn.functional.elu(out)
        # interleave phases into frequency: [1, dec, C, T, F + 1, phase]
        out = out.permute(0, 1, 2, 4, 5, 6, 3).reshape(1, 2 * c, t, 2 * (f + 1))
        return out[..., : self.f_out], (xin if self.kt == 2 else xc[:, :, 1:])


class _LSTMs(nn.Module):
    """A grouped LSTM for one frame, sequence-first (the ONNX LSTM's own layout)."""

    def __init__(self, src: GroupedLSTM):
        super().__init__()
        self.dim, self.groups, self.layers = src.dim, src.groups, src.layers
        g = self.dim // self.groups
        self.lstms = nn.ModuleList()
        for group in src.lstms:
            for lstm in group:
                new = nn.LSTM(g, g)
                new.load_state_dict(lstm.state_dict())
                self.lstms.append(new)
        self.norms = src.norms
        # the interleave [G, g] -> [g, G] between layers as one index
        self.register_buffer(
            "perm", torch.arange(self.dim).view(self.groups, g).t().reshape(-1).clone()
        )

    def forward(self, x, h, c):
        """x [1, 1, D]; h, c [L * G, 1, g] -> (y [1, 1, D], h, c)."""
        g = self.dim // self.groups
        hs, cs = h.split(1, 0), c.split(1, 0)
        new_h, new_c = [], []
        for li, norm in enumerate(self.norms):
            parts = x.split(g, dim=-1)
            outs = []
            for gi in range(self.groups):
                k = li * self.groups + gi
                _, (hk, ck) = self.lstms[k](parts[gi], (hs[k], cs[k]))
                outs.append(hk)
                new_h.append(hk)
                new_c.append(ck)
            x = norm(torch.cat(outs, dim=-1))
            if li < self.layers - 1:
                x = x.index_select(-1, self.perm)
        return x, torch.cat(new_h, 0), torch.cat(new_c, 0)


class LeanStep(nn.Module):
    """``GCRN.step`` for one frame of one stream, from the same weights (eval mode), with its
    state as flat tensors: ``forward(frame [1, 2, 1, F], *state) -> (out, *state)``; a fusion
    model takes its teacher's normalised embedding of the frame too:
    ``forward(frame, ssl [1, 1, D], *state)`` (the teacher runs outside the graph). A
    distillation head is dropped."""

    def __init__(self, model: GCRN):
        super().__init__()
        model.eval()
        cfg = model.config
        self.config = cfg
        self.enc = nn.ModuleList(_Enc(layer) for layer in model.encoder)
        self.enc_lstm = _LSTMs(model.enc_lstm)
        self.dec_lstm = _LSTMs(model.dec_lstm) if model.dec_lstm is not None else None
        self.fusion = bool(cfg.fusion)
        if self.fusion:
            self.fuse_proj = model.fuse_proj
            self.register_buffer("fuse_w", torch.sigmoid(model.fuse_logit.detach()).clone())
        self.dec = nn.ModuleList(
            _Dec((a, b), first=(j == 0))
            for j, (a, b) in enumerate(zip(*model.decoders, strict=True))
        )
        # two 2-D heads (a batched 3-D MatMul would not quantise per channel)
        self.heads = model.heads
        self.eval()

    def init_state(self) -> list[torch.Tensor]:
        return self.state_shapes_of(self)

    @staticmethod
    def state_shapes_of(model) -> list[torch.Tensor]:
        """Zero state tensors of the one-frame step of ``model`` (a GCRN or a LeanStep)."""
        cfg = model.config
        ch = (2, *cfg.channels)
        fs = cfg.freq_sizes
        kt = cfg.kernel[0] - 1
        n = len(cfg.channels)
        enc = [torch.zeros(1, ch[i], kt, fs[i]) for i in range(n)]
        dec = []
        for j, i in enumerate(reversed(range(n))):
            dec.append(torch.zeros(1, (2 if j == 0 else 4) * ch[i + 1], kt, fs[i + 1]))
        k, g = cfg.lstm_layers * cfg.lstm_groups, cfg.bottleneck_dim // cfg.lstm_groups
        lstm = [torch.zeros(k, 1, g) for _ in range(4 if cfg.decoder_lstm else 2)]
        df = [torch.zeros(1, 2, cfg.df_taps, fs[0])] if cfg.df_taps else []
        return enc + dec + lstm + df

    def _power(self, x: torch.Tensor, exponent: float, clamp: float | None) -> torch.Tensor:
        mag2 = (x * x).sum(1, keepdim=True) + 1e-12
        if clamp is not None:
            mag2 = mag2.clamp(max=clamp)
        return x * mag2**exponent

    def forward(self, frame, *state):
        cfg = self.config
        ssl = None
        if self.fusion:
            ssl, state = state[0], state[1:]
        n = len(self.enc)
        taps = cfg.df_taps
        enc_c, dec_c = state[:n], state[n : 2 * n]
        lstm_s = state[2 * n :] if not taps else state[2 * n : -1]
        c = cfg.compress
        x = frame if c == 1.0 else self._power(frame, (c - 1) / 2, None)
        h, skips, new_enc = x, [], []
        for layer, cache in zip(self.enc, enc_c, strict=True):
            h, nc = layer(h, cache)
            skips.append(h)
            new_enc.append(nc)
        c_last, f_last = h.shape[1], h.shape[3]
        z, h_enc, c_enc = self.enc_lstm(h.reshape(1, 1, c_last * f_last), *lstm_s[:2])
        new_lstm = [h_enc, c_enc]
        if ssl is not None:
            z = (1 - self.fuse_w) * z + self.fuse_w * self.fuse_proj(ssl)
        if self.dec_lstm is not None:
            z, h_dec, c_dec = self.dec_lstm(z, *lstm_s[2:4])
            new_lstm += [h_dec, c_dec]
        y = z.reshape(1, c_last, 1, f_last)
        new_dec = []
        for j, (layer, cache) in enumerate(zip(self.dec, dec_c, strict=True)):
            y, nc = layer(y, skips[n - 1 - j], cache)
            new_dec.append(nc)
        f = y.shape[-1]
        y = y.reshape(2, 1 + taps, f)  # [decoder (re, im), channel, F]
        out = torch.cat([h(part) for h, part in zip(self.heads, y[:, 0].chunk(2), strict=True)])
        out = out.reshape(1, 2, 1, f)
        if cfg.residual and cfg.lookahead:  # the frame being estimated, from the filter's cache
            past = state[-1][:, :, taps - cfg.lookahead : taps - cfg.lookahead + 1]
            out = out + (past if c == 1.0 else self._power(past, (c - 1) / 2, None))
        elif cfg.residual:
            out = out + x
        if c != 1.0:
            out = self._power(out, (1 / c - 1) / 2, 1e4)
        if not taps:
            return (out, *new_enc, *new_dec, *new_lstm)
        # deep filter: coefficients [re/im, taps, F] on the last raw frames [1, 2, taps, F]
        # (oldest first), tap k on the frame k back
        w = torch.tanh(y[:, 1:]).flip(1)  # [2, taps, F], oldest tap first
        past = state[-1][0]  # [2, taps, F]
        wr, wi, pr, pi = w[0], w[1], past[0], past[1]
        re = (wr * pr - wi * pi).sum(0)
        im = (wr * pi + wi * pr).sum(0)
        out = out + torch.stack([re, im]).reshape(1, 2, 1, f)
        new_df = torch.cat([state[-1][:, :, 1:], frame], dim=2)
        return (out, *new_enc, *new_dec, *new_lstm, new_df)
