"""The LSTM with peepholes (--peephole) and/or a projection (--proj P): `--model lstm` with
either option (lstm.cell picks this module). PyTorch's gate order i, f, g, o:

    i = sigmoid(a_i + w_ci * c(t-1)),  f = sigmoid(a_f + w_cf * c(t-1)),  g = tanh(a_g)
    c(t) = f * c(t-1) + i * g;   o = sigmoid(a_o + w_co * c(t));   h(t) = W_hr (o * tanh c(t))

a = x W_ih^T + b_ih + h(t-1) W_hh^T + b_hh. Peepholes (Gers & Schmidhuber 2000): the input and
forget gates see the cell state before the step, the output gate the one after it, through
per-unit weights weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k} (H,). The projection, as
PyTorch's proj_size: weight_hr_l{k} (P, H), and h (the recurrent input, the next layer's input,
the decoder's) is P wide while c stays H wide; without it h = o * tanh c. An LSTM with a
projection and no peepholes loads into torch.nn.LSTM(..., proj_size=P) unchanged; peepholes
have no torch.nn twin. Kernels in lstmp_kernels.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from charrnn.cells import base
from charrnn.cells.lstm import Lstm

PEEPHOLES = ("ci", "cf", "co")  # weight_c{i,f,o}_l{k}, in this order


class LstmP(Lstm):
    stacked = False
    kernels = "charrnn.cells.lstmp_kernels"

    def __init__(self, config):
        super().__init__(config)
        self.peephole = config.peephole
        self.proj = config.proj  # P, 0 = none
        self.torch_module = None if self.peephole else "LSTM"

    def features(self) -> list[str]:
        words = ["peephole"] if self.peephole else []
        if self.proj:
            words.append(f"proj {self.proj}")
        return words + super().features()

    def extra_shapes(self, k):
        """weight_hr_l{k} (P, H) with a projection; weight_c{i,f,o}_l{k} (H,) with peepholes."""
        shapes = {f"weight_hr_l{k}": (self.proj, self.hidden)} if self.proj else {}
        if self.peephole:
            shapes.update({f"weight_{n}_l{k}": (self.hidden,) for n in PEEPHOLES})
        return shapes

    def peep(self, p, k) -> np.ndarray:
        """(3, H): w_ci, w_cf, w_co of layer k (zeros without peepholes)."""
        if not self.peephole:
            return np.zeros((3, self.hidden), p[f"weight_hh_l{k}"].dtype)
        return np.stack([p[f"weight_{n}_l{k}"] for n in PEEPHOLES])

    # ------------------------------------------------------------------ training and scoring

    def derive(self, p, k, backward, few_rows=False) -> SimpleNamespace:
        """Also peep (3, H) and W_hr packed: whr_t = W_hr^T for the time loop, whr = W_hr for
        the backward pass (an empty stand-in without a projection)."""
        lw = super().derive(p, k, backward, few_rows)
        lw.peep = self.peep(p, k)
        if self.proj:
            w = p[f"weight_hr_l{k}"]
            lw.whr_t = base.packed(w, transposed=True)
            lw.whr = base.packed(w) if backward else None
        else:
            lw.whr_t = lw.whr = np.zeros((0, 0, 0), lw.peep.dtype)
        return lw

    def work_shapes(self, t, bs) -> dict[str, tuple[int, ...]]:
        """The LSTM's, and with a projection ms (T, B, H): m at every step; m (B, H) and dm
        (B, H) scratch. Without one, empty stand-ins (m is h itself)."""
        h = self.hidden if self.proj else 0
        return {**super().work_shapes(t, bs), "ms": (t, bs, h), "m": (bs, h), "dm": (bs, h)}

    def forward(self, lw, cw, xg, hs, state, final, k, sl, keep, below) -> None:
        proj = self.proj > 0
        if keep:
            cw.cs[0] = state[1][k, sl]
            ms = cw.ms if proj else hs[1:]
            self.k.forward(xg, lw.whh_t, lw.peep, lw.whr_t, hs, cw.cs, cw.tcs, ms, proj)
            final[1][k, sl] = cw.cs[-1]
            return
        c = final[1][k, sl]  # (B, H), contiguous
        c[...] = state[1][k, sl]
        self.k.infer(xg, lw.whh_t, lw.peep, lw.whr_t, hs, c, cw.m, proj)

    def backward(self, lw, cw, act, hs, dhs, dstate, k, sl, grads):
        proj = self.proj > 0
        self.k.backward(act, lw.whh, lw.peep, lw.whr, cw.cs, cw.tcs, dhs, cw.dm, dstate[0][k, sl],
                        dstate[1][k, sl], proj)  # fmt: skip
        if proj:  # h = m W_hr^T: dW_hr = sum over steps and rows of dh^T m
            n = dhs.shape[0] * dhs.shape[1]
            self.k.weight_grad(dhs.reshape(n, -1), cw.ms.reshape(n, -1), grads[f"weight_hr_l{k}"])
        if self.peephole:
            self.k.peephole_grads(act, cw.cs, *(grads[f"weight_{n}_l{k}"] for n in PEEPHOLES))
        return act, act

    # ------------------------------------------------------------------ the split pass

    def part_outputs(self, parts) -> int:
        """With a projection each part makes ceil(P / parts) of h's P outputs."""
        return -(-self.proj // parts) if self.proj else super().part_outputs(parts)

    def part_extras(self, p, parts, hw) -> tuple:
        """peep (L, 3, Hw), zero past H; whr (L, P, NP, Hw, PW): the columns of W_hr^T (Hw, Rw,
        zero past H and P) of each part's Hq outputs, packed (an empty stand-in without a
        projection); proj."""
        n_layers, h = self.config.layers, self.hidden
        dtype = p["weight_hh_l0"].dtype
        peep = np.zeros((n_layers, 3, hw), dtype)
        for k in range(n_layers):
            peep[k, :, :h] = self.peep(p, k)
        if not self.proj:
            return peep, np.zeros((n_layers, parts, 0, 0, 0), dtype), False
        hq = self.part_outputs(parts)
        whr = []
        for k in range(n_layers):
            w = np.zeros((hw, parts * hq), dtype)
            w[:h, : self.proj] = p[f"weight_hr_l{k}"].T
            whr.append(np.stack([base.packed(w[:, q * hq : (q + 1) * hq]) for q in range(parts)]))
        return peep, np.stack(whr), True

    def part_work(self, batch, hw) -> np.ndarray:
        """m (B, Hw), which both threads read after each made its units of it."""
        return np.zeros((batch, hw if self.proj else 0), np.float32)

    # ------------------------------------------------------------------ single steps

    def step_extras(self, p, gated) -> dict[str, np.ndarray]:
        """peep (L, 3, H): the peepholes, halved as their gates (all three are sigmoids); with
        a projection w_hr_t (L, H, P)."""
        n_layers = self.config.layers
        extra = {"peep": 0.5 * np.stack([self.peep(p, k) for k in range(n_layers)])}
        if self.proj:
            extra["w_hr_t"] = np.stack([p[f"weight_hr_l{k}"].T for k in range(n_layers)])
        return extra

    def step(self, w, k, a, gh, state, new) -> np.ndarray:
        hid = self.hidden
        half = a.dtype.type(0.5)
        pk = w.extra["peep"][k]  # (3, H)
        cp = state[1][k]
        a += gh
        if self.peephole:
            a[:, :hid] += pk[0] * cp
            a[:, hid : 2 * hid] += pk[1] * cp
        s = a[:, : 2 * hid]  # i, f as sigmoids
        np.tanh(s, out=s)
        s *= half
        s += half
        gg = a[:, 3 * hid :]
        np.tanh(gg, out=gg)
        gg *= a[:, :hid]  # i * g
        c = new[1][k]
        np.multiply(a[:, hid : 2 * hid], cp, out=c)  # f * c
        c += gg
        o = a[:, 2 * hid : 3 * hid]
        if self.peephole:
            o += pk[2] * c
        np.tanh(o, out=o)
        o *= half
        o += half
        m = np.tanh(c)
        m *= o  # o * tanh(c)
        if not self.proj:
            new[0][k] = m
        else:
            np.matmul(m, w.extra["w_hr_t"][k], out=new[0][k])
        return new[0][k]

    def split_extras(self, w, parts, hp):
        """peep (L, P, 3, Hp); w_hr (L, P, H, Pq): the columns of W_hr^T cut into P parts of
        Pq = ceil(P / parts) outputs, zero past P (an empty stand-in without a projection);
        proj."""
        n_layers, h = self.config.layers, self.hidden
        peep = base.by_unit(w.extra["peep"], parts, hp).transpose(0, 2, 1, 3)
        if self.proj:
            pq = -(-self.proj // parts)
            w_hr = base.by_unit(w.extra["w_hr_t"], parts, pq).transpose(0, 2, 1, 3)
        else:
            w_hr = np.zeros((n_layers, parts, h, 0), w.dtype)
        return (np.ascontiguousarray(peep), np.ascontiguousarray(w_hr), self.proj > 0)

    def fused_work(self, batch: int) -> np.ndarray:
        """m (B, H), which both threads read after each made its units of it."""
        return np.zeros((batch, self.hidden if self.proj else 0), np.float32)
