"""The exact forward pass of a model over a text, its loss included, with every layer's hidden
units split between two cores (kernels/parts.py): the single pass of `charrnn eval`, and the
recomputation of segments whose guessed state was off (evaluate.py).

Reading one character at a time, a model reads every recurrent weight once per character; here
each core reads only its part's gate columns and makes its part's units, and the two meet after
every layer step. The arithmetic of each unit is the one-core pass's (CharRNN.nll's, up to the
rounding of the layers' input GEMMs), and one thread gives exactly the bits of two.
"""

from __future__ import annotations

import numpy as np

from charrnn.cpus import cpu_count
from charrnn.partner import Pair

PARTS = 2  # one part per core on a two-core machine
CHUNK_ROWS = 1024  # characters (steps x rows) per kernel call: its scratch stays in L2


class SplitPass:
    """`model`'s forward pass with its units cut into PARTS parts, on up to two threads.

    nll(x, y, state) is CharRNN.nll's: the same arguments and results. The weights are laid out
    once, here: the model must not change while this is used."""

    def __init__(self, model, threads: int = 0):
        self.config, self.cell, self.dtype = model.config, model.cell, model.dtype
        self.lay = model.cell.derive_parts(model.params, PARTS)
        self.pair = Pair(min(PARTS, threads or cpu_count()))
        self.kernel = model.cell.k.infer_split
        self._buffers: dict[tuple[int, int], tuple] = {}

    def nll(self, x: np.ndarray, y: np.ndarray, state) -> tuple[np.ndarray, tuple]:
        """-log p (B, T) float64 of y given x (B, T) ids (checked by the caller: in range),
        from `state` (the model's state tuple, each (L, B, width)); and the final state."""
        from charrnn.model import set_blas_threads

        B, T = x.shape
        lay = self.lay
        h = _padded(state[0], lay.rw)
        c = _padded(state[1], lay.hw) if len(state) > 1 else h
        out = np.empty((T, B), np.float64)
        steps = max(1, min(T, CHUNK_ROWS // B))
        set_blas_threads(1)  # both threads call BLAS for the layers' input sides
        for t0 in range(0, T, steps):
            t1 = min(T, t0 + steps)
            hs, xg, work, logits = self._scratch(B, t1 - t0)
            xs = np.ascontiguousarray(x[:, t0:t1].T, np.intp).reshape(-1)  # (N,) time-major
            ys = np.ascontiguousarray(y[:, t0:t1].T, np.intp).reshape(-1)
            args = (lay.wts, xs, ys, lay.dec, lay.dec_b, h, c, hs, xg, work, logits,
                    out[t0:t1].reshape(-1))  # fmt: skip
            self.pair.run(self.kernel, args, PARTS, t1 - t0)
        widths = list(self.cell.state_widths().values())
        final = (h, c)[: len(state)]
        return out.T, tuple(
            np.ascontiguousarray(s[..., :w]) for w, s in zip(widths, final, strict=True)
        )

    def _scratch(self, B: int, T: int) -> tuple:
        """hs, xg, work, logits for B rows of T steps (kept for the next call of that shape)."""
        key = (B, T)
        if key not in self._buffers:
            lay, cfg = self.lay, self.config
            if len(self._buffers) >= 4:
                self._buffers.clear()
            gp = lay.wts[0].shape[2]
            self._buffers[key] = (
                np.empty((cfg.layers, T + 1, B, lay.rw), self.dtype),
                np.empty((PARTS, T * B, gp), self.dtype),
                self.cell.part_work(B, lay.hw),
                np.empty((T * B, cfg.vocab_size), self.dtype),
            )
        return self._buffers[key]


def _padded(a: np.ndarray, width: int) -> np.ndarray:
    """a (L, B, W) as a fresh contiguous array (L, B, width), zero past W."""
    out = np.zeros((*a.shape[:2], width), a.dtype)
    out[..., : a.shape[2]] = a
    return out
