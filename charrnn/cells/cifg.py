"""The coupled input-forget gate LSTM (CIFG; Greff et al. 2017, "LSTM: A Search Space Odyssey"):
the input gate is tied to the forget gate, i = 1 - f, so a layer has three gate blocks
(f, g, o) instead of four and a quarter fewer recurrent FLOPs:

    f, g, o = sigmoid, tanh, sigmoid of  x W_ih^T + b_ih + h W_hh^T + b_hh
    c' = f * c + (1 - f) * g;   h' = o * tanh(c')

Parameters as an LSTM's with G = 3: weight_ih_l{k} (3H, in), weight_hh_l{k} (3H, H), biases
(3H,). PyTorch has no such module: a checkpoint reads with numpy but has no torch.nn twin.
Kernels in cifg_kernels.py."""

from __future__ import annotations

import numpy as np

from charrnn.cells.base import activate
from charrnn.cells.lstm import Lstm

OPTIONS: tuple[str, ...] = ()


class Cifg(Lstm):
    """An Lstm in all but its gates: the same state, scratch and kernel calls."""

    name = "cifg"
    gates = 3
    options = OPTIONS
    forget_gate = 0
    step_order = (0, 2, 1)  # f/2, o/2, g
    step_scale = (0.5, 0.5, 1.0)
    torch_module = None
    kernels = "charrnn.cells.cifg_kernels"

    def step(self, w, k, a, gh, state, new) -> np.ndarray:
        hid = self.hidden
        hn = new[0][k]
        activate(a, gh, 2 * hid)  # f, o, g
        c = new[1][k]
        g = a[:, 2 * hid :]
        np.subtract(state[1][k], g, out=c)
        c *= a[:, :hid]
        c += g  # g + f * (c - g) = f * c + (1 - f) * g
        np.tanh(c, out=hn)
        hn *= a[:, hid : 2 * hid]  # o * tanh(c)
        return hn


def cell(config) -> Cifg:
    return Cifg(config)
