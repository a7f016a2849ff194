"""The recurrent cells: one module per cell, and the one table that names them.

A cell module (`rnn`, `lstm`, `gru`, `cifg`, `lstmp`) holds one `base.Cell` subclass: its gate
count, its PyTorch parameter names and shapes and bias rules, its single-step math for sampling,
the weight layouts the fused sampler and the scorer derive, and the calls of its kernels. Its
`@njit` kernels sit beside it in `<name>_kernels.py`, imported on a kernel's first call, so that
sampling starts on the NumPy step without importing Numba (0.4 s).

model.py, step.py, sample.py, checkpoint.py and config.py ask `get(config)` for the cell and
never branch on its name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from charrnn.cells.base import Cell
    from charrnn.config import ModelConfig

# --model name -> the module that defines it (each module's `cell(config)` builds the Cell)
TABLE = {
    "rnn": "charrnn.cells.rnn",
    "lstm": "charrnn.cells.lstm",
    "gru": "charrnn.cells.gru",
    "cifg": "charrnn.cells.cifg",
}
NAMES = tuple(TABLE)


def get(config: ModelConfig) -> Cell:
    """The cell of a model config (its name checked by ModelConfig.validate)."""
    return importlib.import_module(TABLE[config.cell]).cell(config)


def owners(option: str) -> list[str]:
    """Names of the cells that take a config option ("peephole", "proj")."""
    return [n for n in NAMES if option in importlib.import_module(TABLE[n]).OPTIONS]
