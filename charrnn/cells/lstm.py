"""The LSTM, PyTorch's nn.LSTM (gate order i, f, g, o):

    i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of  x W_ih^T + b_ih + h W_hh^T + b_hh
    c' = f * c + i * g;   h' = o * tanh(c')

Kernels in lstm_kernels.py. With --peephole or --proj the model is an LSTMP (lstmp.py)."""

from __future__ import annotations

import numpy as np

from charrnn.cells.base import Cell, activate

OPTIONS = ("peephole", "proj")


class Lstm(Cell):
    name = "lstm"
    gates = 4
    state = ("h", "c")
    options = OPTIONS
    forget_gate = 1
    step_order = (0, 1, 3, 2)  # i/2, f/2, o/2, g
    step_scale = (0.5, 0.5, 0.5, 1.0)
    stacked = True
    torch_module = "LSTM"
    kernels = "charrnn.cells.lstm_kernels"

    def work_shapes(self, t, bs) -> dict[str, tuple[int, ...]]:
        """cs (T+1, B, H): c at every step; tcs (T, B, H): tanh(c') (for the backward pass)."""
        h = self.hidden
        return {"cs": (t + 1, bs, h), "tcs": (t, bs, h)}

    def forward(self, lw, cw, xg, hs, state, final, k, sl, keep, below) -> None:
        if keep:
            cw.cs[0] = state[1][k, sl]
            self.k.forward(xg, lw.whh_t, hs, cw.cs, cw.tcs)
            final[1][k, sl] = cw.cs[-1]
            return
        c = final[1][k, sl]  # (B, H), contiguous
        c[...] = state[1][k, sl]
        if below is not None:
            self.k.infer_stacked(below, lw.wcat, lw.bias, hs, c)
        else:
            self.k.infer(xg, lw.whh_t, hs, c)

    def backward(self, lw, cw, act, hs, dhs, dstate, k, sl, grads):
        self.k.backward(act, lw.whh, cw.cs, cw.tcs, dhs, dstate[0][k, sl], dstate[1][k, sl])
        return act, act

    def step(self, w, k, a, gh, state, new) -> np.ndarray:
        hid = self.hidden
        hn = new[0][k]
        activate(a, gh, 3 * hid)  # i, f, o, g
        c = new[1][k]
        np.multiply(a[:, hid : 2 * hid], state[1][k], out=c)  # f * c
        gg = a[:, 3 * hid :]
        gg *= a[:, :hid]  # i * g
        c += gg
        np.tanh(c, out=hn)
        hn *= a[:, 2 * hid : 3 * hid]  # o * tanh(c)
        return hn


def cell(config) -> Cell:
    if config.peephole or config.proj:
        from charrnn.cells.lstmp import LstmP

        return LstmP(config)
    return Lstm(config)
