"""The Elman RNN, PyTorch's nn.RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or
relu (config.nonlinearity). One gate block; kernels in rnn_kernels.py."""

from __future__ import annotations

import numpy as np

from charrnn.cells.base import Cell

OPTIONS: tuple[str, ...] = ()


class Rnn(Cell):
    name = "rnn"
    gates = 1
    stacked = True
    torch_module = "RNN"
    kernels = "charrnn.cells.rnn_kernels"

    def __init__(self, config):
        super().__init__(config)
        self.relu = config.nonlinearity == "relu"

    def features(self) -> list[str]:
        return [self.config.nonlinearity, *super().features()]

    def forward(self, lw, cw, xg, hs, state, final, k, sl, keep, below) -> None:
        if below is not None:
            self.k.infer_stacked(below, lw.wcat, lw.bias, hs, self.relu)
        else:
            self.k.forward(xg, lw.whh_t, hs, self.relu)

    def backward(self, lw, cw, act, hs, dhs, dstate, k, sl, grads):
        self.k.backward(act, lw.whh, hs, dhs, dstate[0][k, sl], self.relu)
        return act, act

    def step(self, w, k, a, gh, state, new) -> np.ndarray:
        hn = new[0][k]
        a += gh
        if self.relu:
            np.maximum(a, 0, out=hn)
        else:
            np.tanh(a, out=hn)
        return hn

    def split_extras(self, w, parts, hp):
        return (self.relu,)

    def part_extras(self, p, parts, hw) -> tuple:
        return (self.relu,)


def cell(config) -> Rnn:
    return Rnn(config)
