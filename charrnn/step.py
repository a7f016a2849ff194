"""One character at a time through a model, in plain NumPy: the fast-starting path of `sample`.

`prepare` turns a params dict (PyTorch names, see config.param_shapes) into `StepWeights`,
laid out for single steps: the layer-0 input projection of every symbol as a table (a one-hot or
embedded input is a row gather, no matmul), every other matrix transposed so a step is
`x @ W_t` with the G gate blocks side by side. `step` advances B rows by one character; the
cell's own part of a step is its `Cell.step` (charrnn/cells). Nothing here imports Numba.

Shape letters: B rows, V vocab, H hidden, R width of h (H, or P with a projection), L layers,
G gates, E embed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from charrnn import cells
from charrnn.cells.base import Cell, part_columns

if TYPE_CHECKING:
    from charrnn.config import ModelConfig

State = tuple[np.ndarray, ...]  # ("h",) or ("h", "c"): each (L, B, width)


@dataclass(frozen=True)
class StepWeights:
    """A model's weights laid out for single steps. Every array C-contiguous, one dtype.

    Gate blocks are reordered and the sigmoid ones pre-halved (the cell's step_order and
    step_scale), so that one tanh serves every gate (sigmoid(x) = tanh(x / 2) / 2 + 1/2; halving
    is exact in binary floating point): LSTM (i/2, f/2, o/2, g), GRU (r/2, z/2, n), RNN as is.

    table   (V, G*H)       layer-0 pre-activation of each symbol: W_ih_l0 columns (one-hot) or
                           encoder.weight @ W_ih_l0^T (embedding), plus layer 0's input bias
    w_ih_t  (L-1, R, G*H)  W_ih_l{k}^T for layers k = 1..L-1 (empty for one layer)
    bias    (L-1, G*H)     the input bias of layers 1..L-1 (Cell.input_bias: b_ih + b_hh)
    w_hh_t  (L, R, G*H)    W_hh_l{k}^T
    dec_t   (R, V)         decoder.weight^T
    dec_b   (V,)           decoder.bias
    extra                  the cell's own arrays (Cell.step_extras), e.g. GRU's b_hn (L, H)
    """

    cell: Cell
    table: np.ndarray
    w_ih_t: np.ndarray
    w_hh_t: np.ndarray
    bias: np.ndarray
    dec_t: np.ndarray
    dec_b: np.ndarray
    extra: dict[str, np.ndarray]

    @property
    def layers(self) -> int:
        return int(self.w_hh_t.shape[0])

    @property
    def hidden(self) -> int:
        return self.cell.hidden

    @property
    def vocab_size(self) -> int:
        return int(self.dec_b.shape[0])

    @property
    def dtype(self) -> np.dtype:
        return self.table.dtype

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.table, self.w_ih_t, self.w_hh_t, self.bias, self.dec_t, self.dec_b,
                *self.extra.values())  # fmt: skip

    def zero_state(self, batch: int) -> State:
        """Zero state: ("h",) or ("h", "c"), each (L, B, width)."""
        widths = self.cell.state_widths()
        return tuple(np.zeros((self.layers, batch, widths[n]), self.dtype) for n in widths)


def prepare(config: ModelConfig, params: dict[str, np.ndarray], dtype=np.float32) -> StepWeights:
    """Lay out `params` (PyTorch names and shapes, as config.param_shapes) for single steps."""
    cell = cells.get(config)
    shapes = cell.param_shapes()
    for name, shape in shapes.items():
        if name not in params or tuple(np.shape(params[name])) != shape:
            got = None if name not in params else tuple(np.shape(params[name]))
            raise ValueError(f"parameter {name}: expected shape {shape}, got {got}")
    p = {k: np.asarray(params[k], dtype=np.float64) for k in shapes}
    g, h, n_layers = cell.gates, cell.hidden, config.layers
    # gate blocks in the order we store them, and the scale of each (sigmoid gates halved)
    rows = np.concatenate([np.arange(b * h, (b + 1) * h) for b in cell.step_order])  # (G*H,)
    mult = np.repeat(cell.step_scale, h)  # (G*H,)

    def gated(a: np.ndarray) -> np.ndarray:
        """Rows (gate axis first) reordered and scaled."""
        return a[rows] * (mult if a.ndim == 1 else mult[:, None])

    w0 = gated(p["weight_ih_l0"])  # (G*H, in)
    table = (p["encoder.weight"] @ w0.T if config.embed else w0.T) + gated(cell.input_bias(p, 0))
    w_ih_t = np.zeros((n_layers - 1, cell.width, g * h))
    bias = np.zeros((n_layers - 1, g * h))
    for k in range(1, n_layers):
        w_ih_t[k - 1] = gated(p[f"weight_ih_l{k}"]).T
        bias[k - 1] = gated(cell.input_bias(p, k))
    w_hh_t = np.stack([gated(p[f"weight_hh_l{k}"]).T for k in range(n_layers)])

    def c(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype)

    return StepWeights(
        cell=cell,
        table=c(table),
        w_ih_t=c(w_ih_t),
        w_hh_t=c(w_hh_t),
        bias=c(bias),
        dec_t=c(p["decoder.weight"].T),
        dec_b=c(p["decoder.bias"]),
        extra={name: c(a) for name, a in cell.step_extras(p, gated).items()},
    )


PARTS = 2  # hidden-unit parts of the fused kernels: one per core on a two-core machine


@dataclass(frozen=True)
class Parts:
    """StepWeights cut by hidden unit into P parts, for the fused kernels (kernels/step.py).

    Part p owns units [p*Hp, min(H, (p+1)*Hp)), Hp = ceil(H / P); its gate columns are G blocks
    of Hp (the units of each gate, in StepWeights' gate order), zero past H.

    table  (P, V, G*Hp)      w_ih  (L-1, P, R, G*Hp)   w_hh  (L, P, R, G*Hp)
    bias   (L-1, P, G*Hp)    extra: the cell's own (Cell.split_extras)
    """

    table: np.ndarray
    w_ih: np.ndarray
    w_hh: np.ndarray
    bias: np.ndarray
    extra: tuple

    @property
    def wts(self) -> tuple:
        """The cell's `run` argument: table, w_ih, w_hh, bias, then the cell's own."""
        return (self.table, self.w_ih, self.w_hh, self.bias, *self.extra)


def split(w: StepWeights, parts: int = PARTS) -> Parts:
    """Lay out w's gate columns by part (see Parts)."""
    hp = -(-w.hidden // parts)
    cols = part_columns(w.cell.gates, w.hidden, parts)  # (P, G*Hp); G*H: a zero column

    def cut(a: np.ndarray) -> np.ndarray:
        """(..., G*H) -> (..., P, G*Hp)"""
        pad = np.zeros((*a.shape[:-1], 1), a.dtype)
        return np.concatenate([a, pad], axis=-1)[..., cols]

    def c(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a)

    return Parts(
        table=c(cut(w.table).transpose(1, 0, 2)),
        w_ih=c(cut(w.w_ih_t).transpose(0, 2, 1, 3)),
        w_hh=c(cut(w.w_hh_t).transpose(0, 2, 1, 3)),
        bias=c(cut(w.bias)),
        extra=w.cell.split_extras(w, parts, hp),
    )


def step(w: StepWeights, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
    """Advance B rows by one input symbol each.

    ids (B,) int symbol ids; state ("h",) or ("h","c") each (L, B, width).
    Returns logits (B, V) and the new state (fresh arrays; `state` is not modified).
    """
    cell = w.cell
    new = tuple(np.empty_like(s) for s in state)
    x = None  # (B, R) output of the layer below
    for k in range(w.layers):
        if k == 0:
            a = w.table[ids]  # (B, G*H) fresh
        else:
            a = x @ w.w_ih_t[k - 1]
            a += w.bias[k - 1]
        gh = state[0][k] @ w.w_hh_t[k]  # (B, G*H)
        x = cell.step(w, k, a, gh, state, new)
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
