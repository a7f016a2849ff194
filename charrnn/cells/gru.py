"""The GRU, PyTorch's nn.GRU (gate order r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) * n + z * h

b_hn sits inside r * (...), so it is kept apart from the input-side bias. Kernels in
gru_kernels.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from charrnn.cells.base import Cell, by_unit

OPTIONS: tuple[str, ...] = ()


class Gru(Cell):
    name = "gru"
    gates = 3
    step_order = (0, 1, 2)  # r/2, z/2, n
    step_scale = (0.5, 0.5, 1.0)
    torch_module = "GRU"
    kernels = "charrnn.cells.gru_kernels"

    def input_bias(self, p, k) -> np.ndarray:
        """b_ih + [b_hr, b_hz, 0]: b_hn stays apart (`b_hn`)."""
        if not self.config.bias:
            return super().input_bias(p, k)
        h = self.hidden
        b = p[f"bias_ih_l{k}"].copy()
        b[: 2 * h] += p[f"bias_hh_l{k}"][: 2 * h]
        return b

    def b_hn(self, p, k) -> np.ndarray:
        """(H,) the n gate's hidden bias, zeros without biases."""
        if not self.config.bias:
            return np.zeros(self.hidden, p[f"weight_hh_l{k}"].dtype)
        return np.ascontiguousarray(p[f"bias_hh_l{k}"][2 * self.hidden :])

    def derive(self, p, k, backward, few_rows=False) -> SimpleNamespace:
        lw = super().derive(p, k, backward, few_rows)
        lw.bhn = self.b_hn(p, k)
        return lw

    def work_shapes(self, t, bs) -> dict[str, tuple[int, ...]]:
        """hn (T, B, H): W_hn h + b_hn; dgh (T, B, 3H): dL/d(h W_hh^T + b_hh); hg (B, 3H)."""
        g = 3 * self.hidden
        return {"hn": (t, bs, self.hidden), "dgh": (t, bs, g), "hg": (bs, g)}

    def forward(self, lw, cw, xg, hs, state, final, k, sl, keep, below) -> None:
        if keep:
            self.k.forward(xg, lw.whh_t, lw.bhn, hs, cw.hn, cw.hg)
        else:
            self.k.infer(xg, lw.whh_t, lw.bhn, hs, cw.hg)

    def backward(self, lw, cw, act, hs, dhs, dstate, k, sl, grads):
        self.k.backward(act, cw.dgh, lw.whh, hs, cw.hn, dhs, dstate[0][k, sl])
        return act, cw.dgh

    def step_extras(self, p, gated) -> dict[str, np.ndarray]:
        """b_hn (L, H)."""
        return {"b_hn": np.stack([self.b_hn(p, k) for k in range(self.config.layers)])}

    def step(self, w, k, a, gh, state, new) -> np.ndarray:
        hid = self.hidden
        half = a.dtype.type(0.5)
        h, hn = state[0][k], new[0][k]
        rz = a[:, : 2 * hid]
        rz += gh[:, : 2 * hid]
        np.tanh(rz, out=rz)
        rz *= half
        rz += half
        n = gh[:, 2 * hid :]
        n += w.extra["b_hn"][k]
        n *= rz[:, :hid]  # r * (W_hn h + b_hn)
        n += a[:, 2 * hid :]
        np.tanh(n, out=n)
        np.subtract(h, n, out=hn)
        hn *= rz[:, hid:]
        hn += n  # n + z * (h - n) = (1 - z) * n + z * h
        return hn

    def part_extras(self, p, parts, hw) -> tuple:
        """b_hn (L, Hw), zero past H."""
        bhn = np.zeros((self.config.layers, hw), p["weight_hh_l0"].dtype)
        for k in range(self.config.layers):
            bhn[k, : self.hidden] = self.b_hn(p, k)
        return (bhn,)

    def split_extras(self, w, parts, hp):
        """b_hn (L, P, Hp)."""
        return (np.ascontiguousarray(by_unit(w.extra["b_hn"], parts, hp)),)


def cell(config) -> Gru:
    return Gru(config)
