"""What every cell shares, and the contract a cell module fills in.

Shape letters: L layers, H hidden units, R the width of h (H, or P with a projection), G gate
blocks, V vocab, B rows (streams), T steps, N = T*B.

A layer's parameters, as PyTorch names them (k = 0..L-1):
    weight_ih_l{k} (G*H, in_k)   in_0 = E (embedding) or V (one-hot), in_k = R above
    weight_hh_l{k} (G*H, R)
    bias_ih_l{k}, bias_hh_l{k} (G*H,)   unless config.bias is False (PyTorch's bias=False)
    ...and a cell's own tensors after them (`extra_shapes`).

Each layer's gate pre-activations are a = x W_ih^T + h W_hh^T (+ biases): the input side
x W_ih^T is one GEMM over all N rows (model.py), only h W_hh^T runs in the time loop (the cell's
kernels). Three places derive weights from the parameters, each through the cell:
  - training and scoring (model.py): `derive` packs W_hh^T for the time loop (and W_hh for the
    backward pass) and sums the input-side bias;
  - the NumPy step (step.py): `input_bias`, `step_order`/`step_scale` (the gate blocks reordered,
    sigmoid ones pre-halved so one tanh serves every gate) and `step_extras`;
  - the fused sampler (step.split): the step layout cut by unit into parts, and `split_extras`;
  - the split scoring pass (splitpass.py): `derive_parts`, every layer cut by unit into parts.
"""

from __future__ import annotations

import importlib
from functools import cached_property
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from charrnn.errors import UsageError

if TYPE_CHECKING:
    from charrnn.config import ModelConfig


class Cell:
    """One cell type bound to a model config. Subclasses set the class attributes and the
    methods marked "cell's own"; everything else here holds for every cell."""

    name = ""  # as --model
    gates = 1  # G
    state: tuple[str, ...] = ("h",)  # recurrent state arrays, each (L, B, width)
    options: tuple[str, ...] = ()  # config options only this cell takes: "peephole", "proj"
    forget_gate: int | None = None  # gate block set by config.forget_bias, if there is one
    step_order: tuple[int, ...] = (0,)  # gate blocks in the single-step layout
    step_scale: tuple[float, ...] = (1.0,)  # 0.5 for a sigmoid gate: sigmoid(2x) = tanh(x)/2 + 1/2
    stacked = False  # inference above the first layer can run `infer_stacked` (see derive)
    torch_module: str | None = None  # torch.nn class with the same parameters, None: no twin
    kernels = ""  # module of the cell's @njit kernels, imported on first use

    def __init__(self, config: ModelConfig):
        self.config = config
        self.hidden = config.hidden  # H
        self.width = config.output_size  # R

    @cached_property
    def k(self) -> Any:
        """The cell's kernels module (importing it imports Numba)."""
        return importlib.import_module(self.kernels)

    # ------------------------------------------------------------------ description

    def check(self) -> None:
        """Refuse options this cell does not have (UsageError)."""
        from charrnn.cells import owners

        cfg = self.config
        for option, value in (("peephole", cfg.peephole), ("proj", cfg.proj)):
            if value and option not in self.options:
                raise UsageError(
                    f"--{option} is an option of --model {' or '.join(owners(option))}, "
                    f"not of --model {self.name}"
                )

    def features(self) -> list[str]:
        """The cell's options in a few words, for titles and `inspect`: ['tanh'] (rnn),
        ['peephole', 'proj 64', 'no bias'] (lstm)."""
        return [] if self.config.bias else ["no bias"]

    # ------------------------------------------------------------------ parameters

    def layer_shapes(self, k: int, inp: int) -> dict[str, tuple[int, ...]]:
        """Layer k's parameters and shapes, in PyTorch's order, for an input of width inp."""
        gh = self.gates * self.hidden
        shapes = {f"weight_ih_l{k}": (gh, inp), f"weight_hh_l{k}": (gh, self.width)}
        if self.config.bias:
            shapes[f"bias_ih_l{k}"] = (gh,)
            shapes[f"bias_hh_l{k}"] = (gh,)
        shapes.update(self.extra_shapes(k))
        return shapes

    def extra_shapes(self, k: int) -> dict[str, tuple[int, ...]]:
        """Cell's own: tensors of layer k beyond weights and biases."""
        return {}

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter of the model, in canonical order: encoder.weight (V, E) with an
        embedding, each layer's (`layer_shapes`), decoder.weight (V, R), decoder.bias (V,)."""
        cfg = self.config
        v = cfg.vocab_size
        shapes: dict[str, tuple[int, ...]] = {}
        if cfg.embed:
            shapes["encoder.weight"] = (v, cfg.embed)
        for k in range(cfg.layers):
            shapes.update(self.layer_shapes(k, cfg.input_size if k == 0 else self.width))
        shapes["decoder.weight"] = (v, self.width)
        shapes["decoder.bias"] = (v,)
        return shapes

    def state_widths(self) -> dict[str, int]:
        """Width of each state array: h is R wide, a cell state c is H wide."""
        return {name: self.width if name == "h" else self.hidden for name in self.state}

    def initialise(self, params: dict[str, np.ndarray]) -> None:
        """After PyTorch's uniform init: config.forget_bias sets bias_ih's forget block and
        zeroes bias_hh's (cells with a forget gate only)."""
        cfg, h, fg = self.config, self.hidden, self.forget_gate
        if cfg.forget_bias is None or fg is None:
            return
        for k in range(cfg.layers):
            params[f"bias_ih_l{k}"][fg * h : (fg + 1) * h] = cfg.forget_bias
            params[f"bias_hh_l{k}"][fg * h : (fg + 1) * h] = 0.0

    def input_bias(self, p: dict[str, np.ndarray], k: int) -> np.ndarray:
        """(G*H,) the bias added to the input side: b_ih + b_hh, zeros without biases."""
        if not self.config.bias:
            return np.zeros(self.gates * self.hidden, p[f"weight_ih_l{k}"].dtype)
        return p[f"bias_ih_l{k}"] + p[f"bias_hh_l{k}"]

    # ------------------------------------------------------------------ training and scoring

    def work_shapes(self, t: int, bs: int) -> dict[str, tuple[int, ...]]:
        """Cell's own: the shapes of one layer's scratch for bs rows and t steps (model._Work
        allocates them; footprint.py counts them)."""
        return {}

    def work(self, t: int, bs: int, dtype) -> SimpleNamespace:
        """One layer's scratch for bs rows and t steps: `work_shapes`, allocated."""
        return SimpleNamespace(
            **{name: np.empty(shape, dtype) for name, shape in self.work_shapes(t, bs).items()}
        )

    def derive(
        self, p: dict[str, np.ndarray], k: int, backward: bool, few_rows: bool = False
    ) -> SimpleNamespace:
        """Layer k's weights for one call: whh_t = W_hh^T packed for the time loop, whh =
        W_hh packed for the backward pass (when `backward`; with `few_rows`, W_hh itself seen
        as panels where it can be, `panels`), bias = `input_bias`, and wcat =
        [W_ih | W_hh]^T packed for `infer_stacked` (inference above the first layer)."""
        w = p[f"weight_hh_l{k}"]
        wcat = None
        if self.stacked and k > 0 and not backward:
            wcat = packed(np.concatenate([p[f"weight_ih_l{k}"], w], axis=1), transposed=True)
        return SimpleNamespace(
            whh_t=packed(w, transposed=True),
            whh=(panels(w) if few_rows else packed(w)) if backward else None,
            bias=self.input_bias(p, k),
            wcat=wcat,
        )

    def forward(self, lw, cw, xg, hs, state, final, k: int, sl: slice, keep: bool, below):
        """Cell's own: run layer k over T steps for the rows sl of the batch.

        lw: `derive`'s weights; cw: `work`'s scratch. xg (T, B, G*H): the input side with the
        bias (scratch; when `keep`, it receives what `backward` needs). hs (T+1, B, R): hs[0]
        the initial h, hs[1:] receive the outputs (the model copies h in and out). state,
        final: the model's state tuples, each (L, batch, width), initial (in) and final (out):
        the cell reads and writes its other arrays at [k, sl]. below (T, B, R) or None: the
        layer below's outputs when the input side is to be made step by step (lw.wcat)."""
        raise NotImplementedError

    def backward(self, lw, cw, act, hs, dhs, dstate, k: int, sl: slice, grads):
        """Cell's own: back-propagate layer k through T steps, after `forward` with keep.

        act: forward's xg; dhs (T, B, R): dL/dh from above (scratch); dstate: the state
        tuple receiving dL/d(initial state) at [k, sl]; grads: the gradient views, of which the
        cell writes its own tensors (`extra_shapes`). Returns (dgi, dgh), each (T, B, G*H):
        dL/d(input side) and dL/d(h W_hh^T + b_hh) (the same array where the two agree); the
        model makes the gradients of W_ih, W_hh and the biases from them."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the split pass

    def part_outputs(self, parts: int) -> int:
        """Hq: units of h each part makes (Hp = ceil(H / parts); a projection's differ)."""
        return -(-self.hidden // parts)

    def derive_parts(self, p: dict[str, np.ndarray], parts: int) -> SimpleNamespace:
        """The weights of the split scoring pass (splitpass.py, kernels/parts.py): every
        layer's gate rows cut by unit into `parts` parts of Hp = ceil(H / parts) units (zero
        past H), so that one core makes units [q*Hp, (q+1)*Hp) of every layer; h is Rw =
        parts * Hq wide and c Hw = parts * Hp (zero past R and H).

          table (P, V, G*Hp)          layer 0's input side of each symbol, its input bias added
          w_ih (L-1, P, G*Hp, Rw), b_ih (L-1, P, G*Hp)   the layers above: W_ih, input bias
          whh (L, P, NP, Rw, PW)      W_hh^T of each part's gate columns, packed (kernels/tiles)
          dec (V, Rw), dec_b (V,)     the decoder
          wts                         the kernel's tuple: table, w_ih, b_ih, whh, `part_extras`
          rw, hw                      the padded widths of h and c
        """
        cfg, g = self.config, self.gates
        hp, hq = -(-self.hidden // parts), self.part_outputs(parts)
        rw, hw = parts * hq, parts * hp
        cols = part_columns(g, self.hidden, parts)  # (P, G*Hp)

        def rows(a: np.ndarray, width: int | None = None) -> np.ndarray:
            """a (G*H, ...) -> (P, G*Hp, ...): each part's gate rows, zero past H; the last
            axis zero-padded to `width`."""
            a = np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)])[cols]
            if width is not None:
                a = np.concatenate([a, np.zeros((*a.shape[:-1], width - a.shape[-1]), a.dtype)], -1)
            return np.ascontiguousarray(a)

        w0 = p["weight_ih_l0"]  # (G*H, E or V)
        first = p["encoder.weight"] @ w0.T if cfg.embed else w0.T  # (V, G*H)
        table = rows((first + self.input_bias(p, 0)).T).transpose(0, 2, 1)  # (P, V, G*Hp)
        above = range(1, cfg.layers)
        w_ih = [rows(p[f"weight_ih_l{k}"], rw) for k in above]
        b_ih = [rows(self.input_bias(p, k)) for k in above]
        whh = [
            np.stack([packed(w, transposed=True) for w in rows(p[f"weight_hh_l{k}"], rw)])
            for k in range(cfg.layers)
        ]
        dtype = w0.dtype
        dec = np.zeros((cfg.vocab_size, rw), dtype)
        dec[:, : self.width] = p["decoder.weight"]
        w_ih_all = np.stack(w_ih) if w_ih else np.zeros((0, parts, g * hp, rw), dtype)
        b_ih_all = np.stack(b_ih) if b_ih else np.zeros((0, parts, g * hp), dtype)
        wts = (np.ascontiguousarray(table), w_ih_all, b_ih_all, np.stack(whh),
               *self.part_extras(p, parts, hw))  # fmt: skip
        return SimpleNamespace(
            wts=wts, dec=dec, dec_b=np.ascontiguousarray(p["decoder.bias"]), rw=rw, hw=hw
        )

    def part_extras(self, p: dict[str, np.ndarray], parts: int, hw: int) -> tuple:
        """Cell's own: the split pass's arrays beyond table, w_ih, b_ih and whh (hw: c's
        padded width)."""
        return ()

    def part_work(self, batch: int, hw: int) -> np.ndarray:
        """Scratch the threads of the split pass share (cell's own size; none here)."""
        return np.zeros((0, 0), np.float32)

    # ------------------------------------------------------------------ single steps

    def step_extras(self, p: dict[str, np.ndarray], gated) -> dict[str, np.ndarray]:
        """Cell's own: arrays of the single-step layout beyond the common ones (step.py);
        gated(a) reorders and scales a's gate axis (the first) as the layout does."""
        return {}

    def step(self, w, k: int, a: np.ndarray, gh: np.ndarray, state, new) -> np.ndarray:
        """Cell's own: one step of layer k for B rows (NumPy). a (B, G*H): the input side with
        the bias (fresh, may be overwritten); gh (B, G*H) = h W_hh^T; state, new: the old and
        new state tuples (write new[i][k]). Returns the new h (B, R)."""
        raise NotImplementedError

    def split_extras(self, w, parts: int, hp: int) -> tuple[np.ndarray, ...]:
        """Cell's own: the fused kernel's arrays beyond table, w_ih, w_hh and bias."""
        return ()

    def fused_work(self, batch: int) -> np.ndarray:
        """Scratch the two threads of the fused kernel share (cell's own size; none here)."""
        return np.zeros((0, 0), np.float32)


def activate(a: np.ndarray, gh: np.ndarray, sigmoids: int) -> None:
    """a (B, G*H) += gh, then every gate's nonlinearity in place for the single-step layout: tanh,
    and the first `sigmoids` columns (pre-halved) made sigmoids, tanh(x) / 2 + 1/2."""
    half = a.dtype.type(0.5)
    a += gh
    np.tanh(a, out=a)
    s = a[:, :sigmoids]
    s *= half
    s += half


_tiles: Any = None  # charrnn.kernels.tiles, imported on the first `packed` (it imports Numba)


def packed(b: np.ndarray, transposed: bool = False) -> np.ndarray:
    """b (K, N), or b.T when transposed, in the panel layout of kernels.tiles (NP, K, PW)."""
    global _tiles
    if _tiles is None:
        from charrnn.kernels import tiles as _tiles
    tiles = _tiles
    K, N = b.shape[::-1] if transposed else b.shape
    pw = tiles.panel_width(b.dtype)
    out = np.empty(((N + pw - 1) // pw, K, pw), b.dtype)
    (tiles.pack_transposed if transposed else tiles.pack)(b, out)
    return out


def panels(b: np.ndarray) -> np.ndarray:
    """b (K, N) in the panel layout of kernels.tiles (NP, K, PW): when N is a multiple of PW and
    b is C-contiguous, b itself seen as panels (a strided view, read in place: no copy, but
    rows a whole b row apart, so only worth it where the copy is not amortised: few rows per
    step); else `packed(b)`."""
    global _tiles
    if _tiles is None:
        from charrnn.kernels import tiles as _tiles
    K, N = b.shape
    pw = _tiles.panel_width(b.dtype)
    if N % pw or not b.flags.c_contiguous:
        return packed(b)
    return b.reshape(K, N // pw, pw).transpose(1, 0, 2)


def part_columns(gates: int, hidden: int, parts: int) -> np.ndarray:
    """(P, G*Hp) the gate rows (or columns) each part owns, Hp = ceil(H / P): part p owns units
    [p*Hp, min(H, (p+1)*Hp)) and, for each gate block in order, those units' rows; past H the
    index G*H (a zero row the caller appends)."""
    hp = -(-hidden // parts)
    unit = np.arange(parts)[:, None] * hp + np.arange(hp)[None, :]  # (P, Hp)
    cols = np.where(unit < hidden, np.arange(gates)[:, None, None] * hidden + unit, gates * hidden)
    return cols.transpose(1, 0, 2).reshape(parts, gates * hp)  # (G, P, Hp) -> (P, G*Hp)


def by_unit(a: np.ndarray, parts: int, hp: int) -> np.ndarray:
    """(..., H) -> (..., P, Hp): a per-unit array cut into the fused kernel's parts, zero past H."""
    out = np.zeros((*a.shape[:-1], parts * hp), a.dtype)
    out[..., : a.shape[-1]] = a
    return out.reshape(*a.shape[:-1], parts, hp)
