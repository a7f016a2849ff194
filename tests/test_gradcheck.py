"""Float64 central finite differences of the loss against `loss_and_grad`, for every entry of
every parameter and of the initial state, for each cell and option (tests/reference.py:
VARIANTS), 1 and 2 layers, with fixed dropout masks on every layer's output (the top one before
the decoder) or, for the original cells, between layers only, T = 1 and T > 1, one-hot and
embedding input."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import reference as ref

from charrnn.config import ModelConfig
from charrnn.model import CharRNN

EPS = 1e-6
REL = 1e-5  # |analytic - numeric| <= REL * max(|analytic|, |numeric|) + ATOL, per entry
ATOL = 1e-9


def _close(analytic: float, numeric: float) -> bool:
    return abs(analytic - numeric) <= REL * max(abs(analytic), abs(numeric)) + ATOL


CASES = [
    pytest.param(v, layers, T, embed, drop, id=f"{name}-L{layers}-T{T}-E{embed}-{drop}")
    for name, v in ref.VARIANTS.items()
    for layers in (1, 2)
    for T in (1, 3)
    for embed in (0, 3)
    for drop in ((True, False) if name in ref.ORIGINAL else (True,))
]


@pytest.mark.parametrize("variant,layers,T,embed,output_dropout", CASES)
def test_gradients_match_finite_differences(variant, layers, T, embed, output_dropout):
    V, H, B = 5, 3, 2
    cfg = ModelConfig(
        **variant, vocab_size=V, hidden=H, layers=layers, embed=embed, dropout=0.4,
        output_dropout=output_dropout,
    )  # fmt: skip
    key = repr((cfg.cell, cfg.nonlinearity, layers, T, embed, output_dropout))
    if variant not in [ref.VARIANTS[n] for n in ref.ORIGINAL]:
        key += repr(sorted(variant.items()))
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    model = CharRNN.create(cfg, rng, dtype=np.float64)
    # larger weights than the default init so every nonlinearity is exercised away from 0
    model.flat[:] = rng.uniform(-0.9, 0.9, model.flat.size)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    state = tuple(rng.uniform(-0.9, 0.9, s.shape) for s in model.zero_state(B))
    R = cfg.output_size
    masks = [(rng.random((B, T, R)) < 0.6) / 0.6 for _ in range(cfg.dropout_masks)]
    for m in masks:
        m[0, 0, 0] = 0.0  # at least one dropped unit in every mask
    res = model.loss_and_grad(x, y, state, masks=masks)

    def loss(st=state):
        return model.loss_and_grad(x, y, st, masks=masks).loss

    bad = []
    for name, p in model.params.items():
        g = res.grads[name]
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + EPS
            up = loss()
            p[idx] = old - EPS
            down = loss()
            p[idx] = old
            num = (up - down) / (2 * EPS)
            if not _close(g[idx], num):
                bad.append((name, idx, g[idx], num))
    for si, s in enumerate(state):
        for idx in np.ndindex(s.shape):
            plus = tuple(a.copy() for a in state)
            minus = tuple(a.copy() for a in state)
            plus[si][idx] += EPS
            minus[si][idx] -= EPS
            num = (loss(plus) - loss(minus)) / (2 * EPS)
            if not _close(res.dstate[si][idx], num):
                bad.append((f"state{si}", idx, res.dstate[si][idx], num))
    assert not bad, bad[:5]
    # the analytic gradient is not trivially zero
    assert np.abs(res.grad_flat).max() > 1e-3
    if cfg.nonlinearity != "relu":  # 3 relu units can all be off at every step: dstate truly 0
        assert all(np.abs(d).max() > 1e-4 for d in res.dstate)
