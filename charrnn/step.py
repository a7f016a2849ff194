"""One character at a time through a model, in plain NumPy: the fast-starting path of `sample`.

`prepare` turns a params dict (PyTorch names, see config.param_shapes) into `StepWeights`,
laid out for single steps: the layer-0 input projection of every symbol as a table (a one-hot or
embedded input is a row gather, no matmul), every other matrix transposed so a step is
`x @ W_t` with the G gate blocks side by side. `step` advances B rows by one character.

Shape letters: B rows, V vocab, H hidden, L layers, G gates, E embed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charrnn.config import ModelConfig, gates, param_shapes

State = tuple[np.ndarray, ...]  # ("h",) or ("h", "c"): each (L, B, H)


@dataclass(frozen=True)
class StepWeights:
    """A model's weights laid out for single steps. Every array C-contiguous, one dtype.

    Gate blocks are reordered and the sigmoid ones pre-halved, so that one tanh serves every
    gate (sigmoid(x) = tanh(x / 2) / 2 + 1/2; halving is exact in binary floating point):
    LSTM (i/2, f/2, o/2, g), GRU (r/2, z/2, n), RNN as is.

    table   (V, G*H)       layer-0 pre-activation of each symbol: W_ih_l0 columns (one-hot) or
                           encoder.weight @ W_ih_l0^T (embedding), plus both biases of layer 0
    w_ih_t  (L-1, H, G*H)  W_ih_l{k}^T for layers k = 1..L-1 (empty for one layer)
    bias    (L-1, G*H)     b_ih + b_hh of layers 1..L-1
    w_hh_t  (L, H, G*H)    W_hh_l{k}^T
    b_hn    (L, H)         GRU: the n-gate hidden bias, applied inside r * (W_hn h + b_hn), and
                           left out of table/bias; zeros for the other cells
    dec_t   (H, V)         decoder.weight^T
    dec_b   (V,)           decoder.bias
    """

    cell: str
    relu: bool  # rnn only: relu instead of tanh
    table: np.ndarray
    w_ih_t: np.ndarray
    w_hh_t: np.ndarray
    bias: np.ndarray
    b_hn: np.ndarray
    dec_t: np.ndarray
    dec_b: np.ndarray

    @property
    def layers(self) -> int:
        return int(self.w_hh_t.shape[0])

    @property
    def hidden(self) -> int:
        return int(self.w_hh_t.shape[1])

    @property
    def vocab_size(self) -> int:
        return int(self.dec_b.shape[0])

    @property
    def dtype(self) -> np.dtype:
        return self.table.dtype

    def zero_state(self, batch: int) -> State:
        """Zero state: ("h",) or ("h", "c"), each (L, B, H)."""
        shape = (self.layers, batch, self.hidden)
        n = 2 if self.cell == "lstm" else 1
        return tuple(np.zeros(shape, self.dtype) for _ in range(n))


def prepare(config: ModelConfig, params: dict[str, np.ndarray], dtype=np.float32) -> StepWeights:
    """Lay out `params` (PyTorch names and shapes, as config.param_shapes) for single steps."""
    shapes = param_shapes(config)
    for name, shape in shapes.items():
        if name not in params or tuple(np.shape(params[name])) != shape:
            got = None if name not in params else tuple(np.shape(params[name]))
            raise ValueError(f"parameter {name}: expected shape {shape}, got {got}")
    p = {k: np.asarray(params[k], dtype=np.float64) for k in shapes}
    g, h, n_layers = gates(config.cell), config.hidden, config.layers
    # gate blocks in the order we store them, and the scale of each (sigmoid gates halved)
    blocks, scale = {
        "lstm": ([0, 1, 3, 2], [0.5, 0.5, 0.5, 1.0]),
        "gru": ([0, 1, 2], [0.5, 0.5, 1.0]),
    }.get(config.cell, ([0], [1.0]))
    rows = np.concatenate([np.arange(b * h, (b + 1) * h) for b in blocks])  # (G*H,)
    mult = np.repeat(scale, h)  # (G*H,)

    def gated(a: np.ndarray) -> np.ndarray:
        """Rows (gate axis first) reordered and scaled."""
        return a[rows] * (mult if a.ndim == 1 else mult[:, None])

    def biases(k: int) -> np.ndarray:
        b_ih, b_hh = p[f"bias_ih_l{k}"].copy(), p[f"bias_hh_l{k}"].copy()
        if config.cell == "gru":
            b_hh[2 * h :] = 0.0  # b_hn lives apart, inside r * (...)
        return gated(b_ih + b_hh)

    w0 = gated(p["weight_ih_l0"])  # (G*H, in)
    table = (p["encoder.weight"] @ w0.T if config.embed else w0.T) + biases(0)  # (V, G*H)
    w_ih_t = np.zeros((n_layers - 1, h, g * h))
    bias = np.zeros((n_layers - 1, g * h))
    for k in range(1, n_layers):
        w_ih_t[k - 1] = gated(p[f"weight_ih_l{k}"]).T
        bias[k - 1] = biases(k)
    w_hh_t = np.stack([gated(p[f"weight_hh_l{k}"]).T for k in range(n_layers)])
    b_hn = np.zeros((n_layers, h))
    if config.cell == "gru":
        for k in range(n_layers):
            b_hn[k] = p[f"bias_hh_l{k}"][2 * h :]

    def c(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype)

    return StepWeights(
        cell=config.cell,
        relu=config.cell == "rnn" and config.nonlinearity == "relu",
        table=c(table),
        w_ih_t=c(w_ih_t),
        w_hh_t=c(w_hh_t),
        bias=c(bias),
        b_hn=c(b_hn),
        dec_t=c(p["decoder.weight"].T),
        dec_b=c(p["decoder.bias"]),
    )


PARTS = 2  # hidden-unit parts of the fused kernels: one per core on a two-core machine


@dataclass(frozen=True)
class Parts:
    """StepWeights cut by hidden unit into P parts, for the fused kernels (kernels/step.py).

    Part p owns units [p*Hp, min(H, (p+1)*Hp)), Hp = ceil(H / P); its gate columns are G blocks
    of Hp (the units of each gate, in StepWeights' gate order), zero past H.

    table  (P, V, G*Hp)      w_ih  (L-1, P, H, G*Hp)   w_hh  (L, P, H, G*Hp)
    bias   (L-1, P, G*Hp)    b_hn  (L, P, Hp)
    """

    table: np.ndarray
    w_ih: np.ndarray
    w_hh: np.ndarray
    bias: np.ndarray
    b_hn: np.ndarray


def split(w: StepWeights, parts: int = PARTS) -> Parts:
    """Lay out w's gate columns by part (see Parts)."""
    hid = w.hidden
    ng = w.table.shape[1] // hid
    hp = -(-hid // parts)
    unit = np.arange(parts)[:, None] * hp + np.arange(hp)[None, :]  # (P, Hp)
    cols = np.where(unit < hid, np.arange(ng)[:, None, None] * hid + unit, ng * hid)  # (G, P, Hp)
    cols = cols.transpose(1, 0, 2).reshape(parts, ng * hp)  # (P, G*Hp); G*H: a zero column

    def cut(a: np.ndarray) -> np.ndarray:
        """(..., G*H) -> (..., P, G*Hp)"""
        pad = np.zeros((*a.shape[:-1], 1), a.dtype)
        return np.concatenate([a, pad], axis=-1)[..., cols]

    b_hn = np.zeros((w.layers, parts * hp), w.dtype)
    b_hn[:, :hid] = w.b_hn

    def c(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a)

    return Parts(
        table=c(cut(w.table).transpose(1, 0, 2)),
        w_ih=c(cut(w.w_ih_t).transpose(0, 2, 1, 3)),
        w_hh=c(cut(w.w_hh_t).transpose(0, 2, 1, 3)),
        bias=c(cut(w.bias)),
        b_hn=c(b_hn.reshape(w.layers, parts, hp)),
    )


def step(w: StepWeights, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
    """Advance B rows by one input symbol each.

    ids (B,) int symbol ids; state ("h",) or ("h","c") each (L, B, H).
    Returns logits (B, V) and the new state (fresh arrays; `state` is not modified).
    """
    hid = w.hidden
    half = w.dtype.type(0.5)
    h_all = state[0]
    new = tuple(np.empty_like(s) for s in state)
    x = None  # (B, H) output of the layer below
    for k in range(w.layers):
        h = h_all[k]
        if k == 0:
            a = w.table[ids]  # (B, G*H) fresh
        else:
            a = x @ w.w_ih_t[k - 1]
            a += w.bias[k - 1]
        gh = h @ w.w_hh_t[k]  # (B, G*H)
        hn = new[0][k]
        if w.cell == "lstm":
            a += gh
            np.tanh(a, out=a)
            s = a[:, : 3 * hid]  # i, f, o as sigmoids
            s *= half
            s += half
            c = new[1][k]
            np.multiply(a[:, hid : 2 * hid], state[1][k], out=c)  # f * c
            gg = a[:, 3 * hid :]
            gg *= a[:, :hid]  # i * g
            c += gg
            np.tanh(c, out=hn)
            hn *= a[:, 2 * hid : 3 * hid]  # o * tanh(c)
        elif w.cell == "gru":
            rz = a[:, : 2 * hid]
            rz += gh[:, : 2 * hid]
            np.tanh(rz, out=rz)
            rz *= half
            rz += half
            n = gh[:, 2 * hid :]
            n += w.b_hn[k]
            n *= rz[:, :hid]  # r * (W_hn h + b_hn)
            n += a[:, 2 * hid :]
            np.tanh(n, out=n)
            np.subtract(h, n, out=hn)
            hn *= rz[:, hid:]
            hn += n  # n + z * (h - n) = (1 - z) * n + z * h
        else:
            a += gh
            if w.relu:
                np.maximum(a, 0, out=hn)
            else:
                np.tanh(a, out=hn)
        x = hn
    logits = x @ w.dec_t
    logits += w.dec_b
    return logits, new


def feed(w: StepWeights, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
    """Run a prime text through the model. ids (B, T) with T >= 1.

    Returns the logits (B, V) after the last symbol and the state after it."""
    logits = None
    for t in range(ids.shape[1]):
        logits, state = step(w, ids[:, t], state)
    return logits, state
