"""A streaming Wav2Vec2: embeddings of frame t depend only on audio up to the end of frame t.

Wav2Vec2-base is not causal anywhere: per-clip input normalisation, group norm over time in the
first convolution, a positional convolution centred on the current frame, and bidirectional
attention. This subclass of ``transformers``' ``Wav2Vec2Model`` keeps its modules, names and
``save_pretrained`` format, and changes what makes it look ahead (PAPER.md, "a streaming
teacher"):

- a fixed input gain (``input_gain``) instead of per-clip normalisation (``do_normalize =
  False``): the first convolution has no bias and is followed by a per-frame layer norm
  (``feat_extract_norm = "layer"``), so each frame's features hardly depend on the input level
  (the gain keeps quiet input well above the layer norm's epsilon);
- the positional convolution is padded on the past side only;
- attention is causal over a bounded left context of ``causal_context`` frames (20 ms each).

The offline ``forward`` and the streaming ``step`` are one code path: ``_encode`` runs the
transformer over any number of new frames given per-layer key/value caches, so the step for
frame t equals the offline forward at t (tested to 1e-4). The config says it is causal
(``hushlab_causal = True``); :func:`is_causal_config` tells loaders which class to use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining, Wav2Vec2Model
from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2BaseModelOutput

WIN, HOP = 400, 320  # samples: the front end's receptive field and stride (20 ms at 16 kHz)


def is_causal_config(config) -> bool:
    return bool(getattr(config, "hushlab_causal", False))


def make_causal_config(
    base: Wav2Vec2Config | dict, context_frames: int = 64, input_gain: float = 30.0
) -> Wav2Vec2Config:
    """A Wav2Vec2 config made streaming: layer-norm front end, post-norm encoder, causal
    attention over ``context_frames`` frames (64 = 1.28 s)."""
    d = base.to_dict() if hasattr(base, "to_dict") else dict(base)
    d.update(
        feat_extract_norm="layer",
        do_stable_layer_norm=False,
        conv_bias=False,
        hushlab_causal=True,
        causal_context=int(context_frames),
        input_gain=float(input_gain),
    )
    return Wav2Vec2Config(**{k: v for k, v in d.items() if k not in ("model_type",)})


@dataclass
class CausalState:
    """One stream's memory: the last samples of the front end's window, the positional
    convolution's past frames, and each layer's keys and values (at most context - 1 frames)."""

    tail: torch.Tensor  # [B, WIN - HOP] samples
    pos: torch.Tensor  # [B, kernel - 1, D]
    keys: list[torch.Tensor] = field(default_factory=list)  # per layer [B, H, <C, hd]
    values: list[torch.Tensor] = field(default_factory=list)


class CausalWav2Vec2Model(Wav2Vec2Model):
    """``Wav2Vec2Model`` that streams (see the module docstring)."""

    def __init__(self, config: Wav2Vec2Config):
        if not is_causal_config(config):
            raise ValueError("not a causal config: build it with make_causal_config()")
        if config.feat_extract_norm != "layer" or config.do_stable_layer_norm:
            raise ValueError("a causal teacher needs feat_extract_norm='layer' and post-norm")
        super().__init__(config)
        self.context = int(config.causal_context)
        self.input_gain = float(getattr(config, "input_gain", 1.0))

    # -- pieces --------------------------------------------------------------------------------
    def _features(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N] samples -> (projected [B, T, D], conv features [B, T, C]), frame t from samples
        [320 t, 320 t + 400): each frame on its own (per-frame layer norms)."""
        f = self.feature_extractor(wave * self.input_gain).transpose(1, 2)
        return self.feature_projection(f)

    def _pos(self, h: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pe = self.encoder.pos_conv_embed
        k = pe.conv.kernel_size[0]
        hc = torch.cat([cache, h], dim=1)  # [B, k - 1 + T, D]
        y = F.conv1d(hc.transpose(1, 2), pe.conv.weight, pe.conv.bias, groups=pe.conv.groups)
        return pe.activation(y).transpose(1, 2), hc[:, max(0, hc.shape[1] - (k - 1)) :]

    def _attend(self, layer, h, k_cache, v_cache):
        att = layer.attention
        b, t, d = h.shape
        nh, hd = att.num_heads, att.head_dim
        q = att.q_proj(h).view(b, t, nh, hd).transpose(1, 2)  # [B, H, T, hd]
        k = torch.cat([k_cache, att.k_proj(h).view(b, t, nh, hd).transpose(1, 2)], dim=2)
        v = torch.cat([v_cache, att.v_proj(h).view(b, t, nh, hd).transpose(1, 2)], dim=2)
        past = k_cache.shape[2]
        qi = torch.arange(t, device=h.device)[:, None] + past
        kj = torch.arange(past + t, device=h.device)[None, :]
        lag = qi - kj
        allowed = (lag >= 0) & (lag < self.context)  # [T, past + T]
        scores = (q @ k.transpose(-1, -2)) * att.scaling
        scores = scores.masked_fill(~allowed, float("-inf"))
        w = torch.softmax(scores, dim=-1)
        w = F.dropout(w, p=att.dropout, training=self.training)
        out = (w @ v).transpose(1, 2).reshape(b, t, d)
        start = max(0, k.shape[2] - (self.context - 1))  # the frames later queries can see
        return att.out_proj(out), k[:, :, start:], v[:, :, start:]

    def _encode(self, h: torch.Tensor, state: CausalState):
        """Transformer over new frames h [B, T, D] -> (every layer [L + 1 x [B, T, D]], state)."""
        enc = self.encoder
        pos, pos_cache = self._pos(h, state.pos)
        h = enc.dropout(enc.layer_norm(h + pos))
        hidden = [h]
        keys, values = [], []
        for li, layer in enumerate(enc.layers):
            a, kc, vc = self._attend(layer, h, state.keys[li], state.values[li])
            h = layer.layer_norm(h + layer.dropout(a))
            h = layer.final_layer_norm(h + layer.feed_forward(h))
            hidden.append(h)
            keys.append(kc)
            values.append(vc)
        return hidden, CausalState(state.tail, pos_cache, keys, values)

    # -- streaming -----------------------------------------------------------------------------
    def init_state(self, batch: int = 1) -> CausalState:
        p = next(self.parameters())
        cfg = self.config
        d, nh = cfg.hidden_size, cfg.num_attention_heads
        z = dict(device=p.device, dtype=p.dtype)
        k = cfg.num_conv_pos_embeddings
        empty = [torch.zeros(batch, nh, 0, d // nh, **z) for _ in range(cfg.num_hidden_layers)]
        return CausalState(
            torch.zeros(batch, WIN - HOP, **z),
            torch.zeros(batch, k - 1, d, **z),
            empty,
            [e.clone() for e in empty],
        )

    @torch.no_grad()
    def step(self, block: torch.Tensor, state: CausalState) -> tuple[torch.Tensor, CausalState]:
        """320 new samples [B, 320] -> every layer's embedding of the frame they complete
        [L + 1, B, D], and the new state. Frame = the last 400 samples (zeros before the start):
        the offline forward over the signal with 80 zeros in front, frame by frame."""
        if block.shape[-1] != HOP:
            raise ValueError(f"a step takes {HOP} samples, got {block.shape[-1]}")
        window = torch.cat([state.tail, block], dim=-1)  # [B, 400]
        h, _ = self._features(window)
        hidden, new = self._encode(h, state)
        new.tail = window[:, HOP:]
        return torch.stack([x[:, 0] for x in hidden]), new

    # -- offline (the transformers interface) --------------------------------------------------
    def forward(
        self,
        input_values: torch.Tensor | None,
        attention_mask: torch.Tensor | None = None,
        mask_time_indices: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> Wav2Vec2BaseModelOutput:
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("a causal teacher takes unpadded batches (no attention mask)")
        h, extract = self._features(input_values)
        h = self._mask_hidden_states(h, mask_time_indices=mask_time_indices)
        hidden, _ = self._encode(h, self.init_state(h.shape[0]))
        return Wav2Vec2BaseModelOutput(
            last_hidden_state=hidden[-1],
            extract_features=extract,
            hidden_states=tuple(hidden) if output_hidden_states else None,
        )


class CausalWav2Vec2ForPreTraining(Wav2Vec2ForPreTraining):
    """The wav2vec 2.0 objective (masked contrastive prediction) on the causal model: the
    context network predicts masked frames from the past only, as CPC does."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__(config)
        self.wav2vec2 = CausalWav2Vec2Model(config)
        self.post_init()
