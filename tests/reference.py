"""The one naive NumPy reference of every cell, for every test that needs one.

Written from the cell equations (PyTorch's gate orders and parameter names), in float64, one
step and one layer at a time, batch-major; it shares no code with charrnn. Shapes: B rows,
T steps, L layers, H hidden, R width of h (P with a projection, else H), V vocab.
"""

from __future__ import annotations

import numpy as np
import pytest

# every cell and option the tests run, as ModelConfig keyword arguments (proj = 2 needs H >= 3)
VARIANTS: dict[str, dict] = {
    "rnn": {"cell": "rnn"},
    "rnn-relu": {"cell": "rnn", "nonlinearity": "relu"},
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
    "rnn-nobias": {"cell": "rnn", "bias": False},
    "lstm-nobias": {"cell": "lstm", "bias": False},
    "gru-nobias": {"cell": "gru", "bias": False},
    "cifg": {"cell": "cifg"},
    "cifg-nobias": {"cell": "cifg", "bias": False},
    "lstm-peephole": {"cell": "lstm", "peephole": True},
    "lstm-proj": {"cell": "lstm", "proj": 2},
    "lstm-peephole-proj": {"cell": "lstm", "peephole": True, "proj": 2},
    "lstm-proj-nobias": {"cell": "lstm", "proj": 2, "bias": False},
}
ORIGINAL = ("rnn", "rnn-relu", "lstm", "gru")  # the cells before the variants


def variants(*names: str) -> list:
    """pytest params of VARIANTS (all of them without names), each with its name as id."""
    return [pytest.param(VARIANTS[n], id=n) for n in names or VARIANTS]


def torch_twin(variant: str) -> bool:
    """Whether a variant loads into a torch.nn module (peepholes and coupled gates do not)."""
    v = VARIANTS[variant]
    return v["cell"] in ("rnn", "lstm", "gru") and not v.get("peephole")


def torch_rnn(cfg):
    """The torch.nn.RNN / LSTM / GRU (batch_first) with cfg's shapes and options."""
    import torch

    kw = dict(input_size=cfg.input_size, hidden_size=cfg.hidden, num_layers=cfg.layers,
              bias=cfg.bias, batch_first=True)  # fmt: skip
    if cfg.cell == "lstm":
        return torch.nn.LSTM(proj_size=cfg.proj, **kw)
    if cfg.cell == "gru":
        return torch.nn.GRU(**kw)
    return torch.nn.RNN(nonlinearity=cfg.nonlinearity, **kw)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def widths(cfg) -> dict[str, int]:
    """The state arrays of a cell and their widths (h: R; c: H)."""
    r = cfg.proj or cfg.hidden
    return {"h": r, "c": cfg.hidden} if cfg.cell in ("lstm", "cifg") else {"h": r}


def zero_state(cfg, batch: int) -> tuple[np.ndarray, ...]:
    return tuple(np.zeros((cfg.layers, batch, w)) for w in widths(cfg).values())


def params64(params: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def layer_step(cfg, p: dict, k: int, x, state: tuple):
    """Layer k for one step: x (B, in), state = this layer's (h (B, R)[, c (B, H)]).
    Returns the new state tuple; its first array is the layer's output."""
    H = cfg.hidden
    gi = x @ p[f"weight_ih_l{k}"].T
    gh = state[0] @ p[f"weight_hh_l{k}"].T
    if cfg.bias:
        gi = gi + p[f"bias_ih_l{k}"]
        gh = gh + p[f"bias_hh_l{k}"]
    if cfg.cell == "rnn":
        pre = gi + gh
        return (np.maximum(pre, 0) if cfg.nonlinearity == "relu" else np.tanh(pre),)
    if cfg.cell == "gru":
        r = sigmoid(gi[:, :H] + gh[:, :H])
        z = sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
        return ((1 - z) * n + z * state[0],)
    a = gi + gh
    c = state[1]
    if cfg.cell == "cifg":  # blocks f, g, o; the input gate is 1 - f
        f = sigmoid(a[:, :H])
        g = np.tanh(a[:, H : 2 * H])
        c = f * c + (1 - f) * g
        o = sigmoid(a[:, 2 * H :])
    else:  # lstm: blocks i, f, g, o; peepholes: i and f see c(t-1), o sees c(t)
        pi = pf = po = 0.0
        if cfg.peephole:
            pi, pf, po = (p[f"weight_c{n}_l{k}"] for n in "ifo")
        i = sigmoid(a[:, :H] + pi * c)
        f = sigmoid(a[:, H : 2 * H] + pf * c)
        g = np.tanh(a[:, 2 * H : 3 * H])
        c = f * c + i * g
        o = sigmoid(a[:, 3 * H :] + po * c)
    h = o * np.tanh(c)
    if cfg.proj:
        h = h @ p[f"weight_hr_l{k}"].T
    return (h, c)


def step(cfg, p: dict, ids, state: tuple, masks: list | None = None):
    """One character for B rows: ids (B,), state: (L, B, width) arrays; masks: per dropped
    layer output, (B, R) each (the last also before the decoder when there are L of them).
    p: float64 arrays (params64). Returns logits (B, V), the new state, per-layer outputs."""
    x = p["encoder.weight"][ids] if cfg.embed else np.eye(cfg.vocab_size)[ids]
    new = [np.empty_like(s) for s in state]
    outs = []
    for k in range(cfg.layers):
        layer = layer_step(cfg, p, k, x, tuple(s[k] for s in state))
        for n, s in zip(new, layer, strict=True):
            n[k] = s
        outs.append(layer[0])
        x = layer[0] * masks[k] if (masks is not None and k < len(masks)) else layer[0]
    return x @ p["decoder.weight"].T + p["decoder.bias"], tuple(new), outs


def run(cfg, params: dict, x, state=None, masks=None):
    """x (B, T) ids from `state` (None: zeros). masks: per dropped layer output, (B, T, R).
    Returns logits (B, T, V), the final state and every layer's outputs, each (B, T, R)."""
    p = params64(params)
    B, T = x.shape
    state = zero_state(cfg, B) if state is None else tuple(np.array(s, np.float64) for s in state)
    logits = np.zeros((B, T, cfg.vocab_size))
    outs = [np.zeros((B, T, cfg.proj or cfg.hidden)) for _ in range(cfg.layers)]
    for t in range(T):
        m = None if masks is None else [mk[:, t] for mk in masks]
        logits[:, t], state, layer_outs = step(cfg, p, x[:, t], state, m)
        for o, lo in zip(outs, layer_outs, strict=True):
            o[:, t] = lo
    return logits, state, outs


def nll(logits, y):
    """Nats of predicting y (B, T) from logits (B, T, V)."""
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    return lse - np.take_along_axis(logits, y[..., None], -1)[..., 0]
