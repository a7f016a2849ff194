"""From an encoded corpus to training batches: contiguous train/val/test splits, char-rnn's layout
of B parallel streams cut into (B, T) batches (resumable), and chunks for a stateful eval pass.

Reading and caching the corpus lives in charrnn/corpus.py; its public names are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from charrnn.corpus import Corpus, default_cache_dir, default_corpus_path, load_corpus
from charrnn.errors import CorpusError, UsageError

__all__ = [
    "MIN_SPLIT_CHARS",
    "Batches",
    "Corpus",
    "default_cache_dir",
    "default_corpus_path",
    "fit_batch",
    "iter_chunks",
    "load_corpus",
    "split_ids",
]

# The smallest non-empty split: one input character and the character after it (one prediction).
MIN_SPLIT_CHARS = 2


def split_ids(
    n: int, val_fraction: float = 0.05, test_fraction: float = 0.05
) -> tuple[slice, slice, slice]:
    """Contiguous train, val, test slices of a corpus of n characters, in that order.

    A split gets round(n * fraction) characters, but at least MIN_SPLIT_CHARS (2) unless its
    fraction is 0 (then it is empty); train gets the rest, and must keep at least 2 as well.
    With the default 5%/5%, the smallest corpus that splits has 6 characters.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UsageError("val and test fractions must be in [0, 1) and sum to less than 1")

    def size(fraction: float) -> int:
        return 0 if fraction == 0 else max(MIN_SPLIT_CHARS, math.floor(n * fraction + 0.5))

    n_val, n_test = size(val_fraction), size(test_fraction)
    n_train = n - n_val - n_test
    if n_train < MIN_SPLIT_CHARS:
        need = n_val + n_test + MIN_SPLIT_CHARS
        raise CorpusError(
            f"the corpus is too small to split: {n} characters, need at least {need} "
            "(give more text, or lower --val-fraction/--test-fraction, 0 turns a split off)"
        )
    a, b = n_train, n_train + n_val
    return slice(0, a), slice(a, b), slice(b, n)


def fit_batch(n_chars: int, batch: int, seq: int) -> tuple[int, int, str | None]:
    """The (batch, seq) to use on a training text of n_chars, and a warning when it had to shrink.

    One batch needs batch * seq + 1 characters (the +1 is the target of the last input). When the
    text is shorter, batch shrinks first (to (n_chars - 1) // seq), then seq (batch 1, seq
    n_chars - 1). Fewer than 2 characters cannot train at all: CorpusError.
    """
    if batch < 1 or seq < 1:
        raise UsageError(f"batch and seq must be at least 1, got {batch} and {seq}")
    if n_chars < MIN_SPLIT_CHARS:
        raise CorpusError(
            f"the training text has {n_chars} character(s): need at least 2 "
            "(give more text, or lower --val-fraction/--test-fraction)"
        )
    if n_chars - 1 >= batch * seq:
        return batch, seq, None
    new_batch = (n_chars - 1) // seq
    new_batch, new_seq = (new_batch, seq) if new_batch >= 1 else (1, n_chars - 1)
    warning = (
        f"the training text ({n_chars:,} characters) is shorter than one batch of "
        f"{batch}x{seq}+1: using batch {new_batch} and seq {new_seq}"
    )
    return new_batch, new_seq, warning


class Batches:
    """char-rnn's batch layout over the training ids, resumable at any batch.

    ids (N,) are cut into B contiguous streams of length L = (N - 1) // B: x streams (B, L) =
    ids[:B*L].reshape(B, L) and y streams (B, L) = ids[1:B*L+1].reshape(B, L), the next characters.
    Batch k of an epoch is x[:, k*T:(k+1)*T], y[:, k*T:(k+1)*T] as int32 (B, T), so the hidden
    state carried from batch k to k+1 continues each stream. An epoch has L // T batches; the
    last (L % T) characters of each stream and the last (N - 1) % B characters are not used.
    """

    def __init__(self, ids: np.ndarray, batch: int, seq: int, position: int = 0) -> None:
        if batch < 1 or seq < 1:
            raise UsageError(f"batch and seq must be at least 1, got {batch} and {seq}")
        n = int(ids.shape[0])
        if n - 1 < batch * seq:
            raise CorpusError(
                f"the training text ({n:,} characters) is shorter than one batch of "
                f"{batch}x{seq}+1 (lower --batch or --seq)"
            )
        self.batch, self.seq, self.chars = batch, seq, n
        length = (n - 1) // batch  # L, characters per stream
        self.steps_per_epoch = length // seq
        # a plain ndarray view: slicing a np.memmap (a cached corpus) costs several times more
        ids = np.asarray(ids)
        self._x = ids[: batch * length].reshape(batch, length)  # (B, L)
        self._y = ids[1 : batch * length + 1].reshape(batch, length)  # (B, L)
        self.position = 0
        self.load_state_dict({"position": position, "batch": batch, "seq": seq, "chars": n})

    @property
    def epoch(self) -> int:
        """The epoch of the next batch (0-based): whole epochs done so far."""
        return self.position // self.steps_per_epoch

    @property
    def step_in_epoch(self) -> int:
        """Index k of the next batch within its epoch."""
        return self.position % self.steps_per_epoch

    def batch_at(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch k of an epoch: x, y int32 (B, T)."""
        if not 0 <= k < self.steps_per_epoch:
            raise IndexError(f"batch {k} is outside 0..{self.steps_per_epoch - 1}")
        cols = slice(k * self.seq, (k + 1) * self.seq)
        return self._x[:, cols].astype(np.int32), self._y[:, cols].astype(np.int32)

    def next(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """The next batch x, y (B, T) int32, and whether it starts an epoch (always so for the
        first batch of each epoch, the very first included): reset the hidden state then."""
        k = self.step_in_epoch
        x, y = self.batch_at(k)
        self.position += 1
        return x, y, k == 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
        while True:
            yield self.next()

    def state_dict(self) -> dict[str, int]:
        """Plain ints (JSON-able): the position and the layout it refers to."""
        return {
            "position": self.position,
            "batch": self.batch,
            "seq": self.seq,
            "chars": self.chars,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at a saved position. The layout (batch, seq, chars) must be the same."""
        try:
            position = int(state["position"])
            saved = (int(state["batch"]), int(state["seq"]), int(state["chars"]))
        except (KeyError, TypeError, ValueError):
            raise CorpusError("the saved data position is damaged (start a new run)") from None
        if saved != (self.batch, self.seq, self.chars):
            raise CorpusError(
                f"the saved data position is for batch {saved[0]}, seq {saved[1]} over "
                f"{saved[2]:,} characters, this run has batch {self.batch}, seq {self.seq} over "
                f"{self.chars:,} (use the same corpus and batch layout to resume)"
            )
        if position < 0:
            raise CorpusError(f"the saved data position is negative ({position})")
        self.position = position


def iter_chunks(ids: np.ndarray, seq: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A whole split as consecutive chunks for a stateful pass with batch 1.

    Yields x, y int32 (1, T') with y the characters after x; T' = seq except for a shorter last
    chunk. Together the chunks predict ids[1:] from ids[:-1]: N - 1 predictions, none for N < 2.
    """
    if seq < 1:
        raise UsageError(f"seq must be at least 1, got {seq}")
    n = int(ids.shape[0])
    for start in range(0, n - 1, seq):
        stop = min(start + seq, n - 1)
        x = np.asarray(ids[start:stop], dtype=np.int32).reshape(1, -1)
        y = np.asarray(ids[start + 1 : stop + 1], dtype=np.int32).reshape(1, -1)
        yield x, y
