"""A streaming teacher's step with fixed-size caches, exported to ONNX for live fusion.

``CausalWav2Vec2Model.step`` keeps keys and values that grow to ``context - 1`` frames, which
suits PyTorch; in PyTorch its many small operations cost about 4 ms per 20 ms hop on one thread.
``TeacherStep`` computes the same embedding with caches of constant size (``context - 1``
frames, zeros at first) and a count of the frames filled so far, which masks the empty ones, so
it exports to one ONNX graph: ``(block [1, 320], tail, pos, keys, values, filled) ->
(normalised embedding [1, 1, D], tail, pos, keys, values, filled)``. Tested against the PyTorch
step beyond the context length (``tests/models/test_teacher_step.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.causal_teacher import HOP, WIN


class TeacherStep(nn.Module):
    def __init__(self, teacher):
        super().__init__()
        m = teacher.model.eval()
        self.m = m
        self.layer = int(teacher.layer)
        mean, std = teacher.load_stats()
        self.register_buffer("mean", mean[self.layer].float().clone())
        self.register_buffer("std", std[self.layer].float().clone())
        cfg = m.config
        self.cache = int(m.context) - 1
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.layers = cfg.num_hidden_layers
        self.kernel = cfg.num_conv_pos_embeddings
        self.dim = cfg.hidden_size

    def init_state(self) -> list[torch.Tensor]:
        kv = (self.layers, 1, self.heads, self.cache, self.head_dim)
        return [
            torch.zeros(1, WIN - HOP),
            torch.zeros(1, self.kernel - 1, self.dim),
            torch.zeros(kv),
            torch.zeros(kv),
            torch.zeros(1),
        ]

    def _attend(self, layer, h, k_cache, v_cache, valid):
        att = layer.attention
        nh, hd = self.heads, self.head_dim
        q = att.q_proj(h).view(1, 1, nh, hd).transpose(1, 2)  # [1, H, 1, hd]
        k = torch.cat([k_cache, att.k_proj(h).view(1, 1, nh, hd).transpose(1, 2)], dim=2)
        v = torch.cat([v_cache, att.v_proj(h).view(1, 1, nh, hd).transpose(1, 2)], dim=2)
        scores = (q @ k.transpose(-1, -2)) * att.scaling  # [1, H, 1, cache + 1]
        scores = scores.masked_fill(~valid, float("-inf"))
        out = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(1, 1, self.dim)
        return att.out_proj(out), k[:, :, 1:], v[:, :, 1:]

    def forward(self, block, tail, pos, keys, values, filled):
        m = self.m
        window = torch.cat([tail, block], dim=-1)  # [1, 400]
        h, _ = m._features(window)  # [1, 1, D]
        p, new_pos = m._pos(h, pos)
        enc = m.encoder
        h = enc.layer_norm(h + p)
        hidden = [h]
        # cache slot j holds the frame (cache - j) hops back; it is filled once j >= cache - filled
        slots = torch.arange(self.cache + 1, dtype=filled.dtype)
        valid = (slots >= self.cache - filled) | (slots == self.cache)
        new_k, new_v = [], []
        for li, layer in enumerate(enc.layers):
            a, kc, vc = self._attend(layer, h, keys[li], values[li], valid)
            h = layer.layer_norm(h + a)
            h = layer.final_layer_norm(h + layer.feed_forward(h))
            hidden.append(h)
            new_k.append(kc)
            new_v.append(vc)
        e = (hidden[self.layer] - self.mean) / self.std
        filled = torch.clamp(filled + 1, max=float(self.cache))
        return e, window[:, HOP:], new_pos, torch.stack(new_k), torch.stack(new_v), filled


def export_teacher_step(teacher, cache_dir: Path) -> Path:
    """The ONNX graph of ``teacher``'s step at its layer (cached by digest and layer)."""
    from models.onnx_step import export_cached, toolchain_tag

    tag = f"{teacher.digest[:16]}-L{teacher.layer}-{toolchain_tag()}"
    path = Path(cache_dir) / f"teacher-step-{tag}.onnx"
    if path.exists():
        return path
    step = TeacherStep(teacher).eval()
    names = ["tail", "pos", "keys", "values", "filled"]
    return export_cached(
        step,
        (torch.zeros(1, HOP), *step.init_state()),
        path,
        ["block", *names],
        ["embedding", *[n + "_out" for n in names]],
    )


def teacher_initial_state(teacher) -> list[np.ndarray]:
    return [t.numpy().copy() for t in TeacherStep(teacher).init_state()]
