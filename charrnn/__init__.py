"""charrnn: character-level RNN, LSTM and GRU language models on the CPU.

The Python API (see charrnn/api.py): `charrnn.load(path)` returns a `Model` with `sample`,
`score`, `score_lines` and `surprisal`; errors are `CharrnnError` and its subclasses.
"""

from charrnn.errors import CharrnnError, CheckpointError, CorpusError, UsageError

__version__ = "0.1.0"
__all__ = ["CharrnnError", "CheckpointError", "CorpusError", "UsageError", "load"]


def load(path, threads: int = 0):
    """The model in the checkpoint at `path` (a file, or a folder: its newest run's best), as a
    `charrnn.api.Model`. threads: cores scoring may use (0: all)."""
    from charrnn.api import load as _load

    return _load(path, threads)
