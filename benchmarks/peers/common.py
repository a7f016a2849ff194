"""What the peers in quality_vs_peers.py share with charrnn: the corpus, cut exactly as
`charrnn train` cuts it, a wall-clock budget that estimates the steps it allows (so a cosine
schedule ends with it, as charrnn's does), and one JSON line of results on stdout."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from charrnn.data import split_ids  # noqa: E402


@dataclass
class Splits:
    """The corpus as ids (N,) over its sorted characters (V), and the held-out texts."""

    vocab: list[str]
    train: np.ndarray  # first 90 %
    val: np.ndarray  # next 5 %: picks the best weights
    test: np.ndarray  # last 5 %: charrnn's test split
    last10: np.ndarray  # last 10 %: nanoGPT's validation split (val + test)


def load_splits(corpus: Path) -> Splits:
    text = corpus.read_text(encoding="utf-8")
    vocab = sorted(set(text))
    lookup = {c: i for i, c in enumerate(vocab)}
    ids = np.fromiter((lookup[c] for c in text), np.int64, len(text))
    tr, va, te = split_ids(len(ids), 0.05, 0.05)
    return Splits(vocab, ids[tr], ids[va], ids[te], ids[int(len(ids) * 0.9) :])


class Budget:
    """A wall-clock budget from construction; `total_steps` estimates the steps it allows from
    the pace so far (evaluations included), as charrnn's Trainer does for --max-time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()
        self.total_steps: int | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def over(self) -> bool:
        return self.elapsed() >= self.seconds

    def estimate(self, step: int) -> None:
        wall = self.elapsed()
        if step > 0 and wall > 0:
            self.total_steps = step + int(max(0.0, self.seconds - wall) * step / wall)


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)


def emit(result: dict) -> None:
    result["pid"] = os.getpid()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
