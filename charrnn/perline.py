"""Scoring many short, independent sequences (lines, documents) with one or more models, and
streaming the results in input order as the input arrives.

Engine: `score_sequences` scores sequences of ids, each from the zero state (charrnn/units.py
says what a line's sequence is and why). Sequences are sorted by length and cut into groups of
similar length, up to GROUP_ROWS side by side in one model call (one weight read serves every
row; the rows are shared out over the cores), padded to the group's longest and the padding left
out of the sums; a sequence longer than LONG is scored alone by evaluate.score_ids, as a whole
text is (the exact single pass over the cores, or segments where they were measured to pay).

Streaming: `stream_batches` reads units in a background thread and hands them on in batches: as
many as have arrived, up to a limit that grows from FIRST_BATCH, so the first rows come out at
once and a slow pipe (`tail -f log | charrnn eval --per line`) gets each line's row as soon as
that line is complete.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from charrnn.errors import CharrnnError
from charrnn.units import Encoded, Unit, encode, newline_id, sequence

GROUP_ROWS = 64  # sequences side by side in one model call
GROUP_CELLS = 1 << 16  # at most this many padded steps (rows x longest) per call
LONG = 8192  # a longer sequence is scored alone, as a whole text
FIRST_BATCH = 16  # units in the first batch handed on; the limit doubles after each batch ...
MAX_BATCH = 1024  # ... up to this
MAX_BATCH_BYTES = 1 << 20  # and a batch stops growing past this many bytes
QUEUE_UNITS = 4096  # units the reader may run ahead of the scoring


def score_sequences(model, seqs: list[np.ndarray]) -> np.ndarray:
    """Total nats (U,) float64 of each sequence of ids (each (n_u,) with n_u >= 2): the sum of
    -log p(s[t+1] | s[0..t]) for t = 0..n_u-2, from the zero state. `model` is a CharRNN (a
    frozen copy keeps its derived weights between calls); its threads are used."""
    from charrnn.evaluate import score_ids

    lengths = np.array([len(s) for s in seqs], dtype=np.int64)  # (U,)
    if lengths.size and lengths.min() < 2:
        raise ValueError("every sequence needs at least 2 ids (a context and a prediction)")
    out = np.zeros(lengths.size)
    order = np.argsort(lengths, kind="stable")
    short = [int(i) for i in order if lengths[i] <= LONG]
    start = 0
    while start < len(short):
        stop = start + 1
        while (
            stop < len(short)
            and stop - start < GROUP_ROWS
            and (stop - start + 1) * (lengths[short[stop]] - 1) <= GROUP_CELLS
        ):
            stop += 1
        group = short[start:stop]
        out[group] = _score_group(model, [seqs[i] for i in group])
        start = stop
    for i in order:
        if lengths[i] > LONG:
            out[i] = score_ids(model, seqs[i], threads=model.threads).total_nats
    return out


def _score_group(model, seqs: list[np.ndarray]) -> np.ndarray:
    """Total nats (B,) of B sequences scored side by side, padded to the longest."""
    steps = np.array([len(s) - 1 for s in seqs])  # (B,) predictions per row
    x = np.zeros((len(seqs), int(steps.max())), np.intp)  # (B, T), padding: id 0
    y = np.zeros_like(x)
    for r, s in enumerate(seqs):
        x[r, : steps[r]] = s[:-1]
        y[r, : steps[r]] = s[1:]
    nll, _ = model.nll(x, y)  # (B, T)
    scored = np.arange(x.shape[1])[None, :] < steps[:, None]  # (B, T)
    return np.where(scored, nll, 0.0).sum(axis=1)


# --------------------------------------------------------------------------------- scoring units


@dataclass
class Scored:
    """One unit scored by one model."""

    nats: float  # total nats over the scored symbols
    scored: int  # predictions made: the symbols the model knows, the closing newline included
    skipped: int  # symbols left out (unknown, or undecodable bytes), with unk="skip"

    @property
    def nats_per_char(self) -> float:
        return self.nats / self.scored

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2.0)


@dataclass
class Row:
    """One unit and its score by each model, in the order the models were given."""

    unit: Unit
    chars: int  # symbols of the unit, its closing newline included
    scores: list[Scored]

    def best(self) -> int:
        """Index of the model with the lowest bits/char (the first one on a tie)."""
        return min(range(len(self.scores)), key=lambda m: self.scores[m].nats_per_char)


class Partial(Exception):
    """A batch whose unit `rows`-many could not be encoded: the rows before it, and the error."""

    def __init__(self, rows: list[Row], error: Exception) -> None:
        super().__init__(str(error))
        self.rows, self.error = rows, error


class UnitScorer:
    """Scores units with several models (CharRNN, Vocab, name), all of one vocabulary kind."""

    def __init__(self, models: list[tuple], unk: str = "error") -> None:
        self.models = [(m, vocab, name, newline_id(vocab, name)) for m, vocab, name in models]
        self.unk = unk

    def score(self, units: list[Unit]) -> list[Row]:
        """A row per unit, in order. A unit that cannot be encoded (unk="error"): Partial, with
        the rows of the units before it."""
        encoded: list[list[Encoded]] = []  # per unit, per model
        error = None
        for u in units:
            try:
                encoded.append(
                    [encode(u.raw, v, self.unk, f"{u.source}:{u.line}", n)
                     for _, v, n, _ in self.models]
                )  # fmt: skip
            except CharrnnError as e:
                error = e
                break
        nats = [
            score_sequences(model, [sequence(e[m], nl) for e in encoded]) if encoded else []
            for m, (model, _, _, nl) in enumerate(self.models)
        ]
        rows = [
            Row(
                u,
                encs[0].chars,
                [
                    Scored(float(nats[m][i]), int(e.ids.size) + 1, e.skipped)
                    for m, e in enumerate(encs)
                ],
            )  # fmt: skip
            for i, (u, encs) in enumerate(zip(units, encoded, strict=False))
        ]
        if error is not None:
            raise Partial(rows, error)
        return rows


# --------------------------------------------------------------------------------- streaming

_END = object()


def stream_batches(units: Iterator[Unit], full: bool = False) -> Iterator[list[Unit]]:
    """The units in order, in batches of those already read (at least one; a limit that grows
    from FIRST_BATCH to MAX_BATCH units or MAX_BATCH_BYTES bytes), read in a background thread
    whose errors are raised here, after the batches before them. full (files, whose text is all
    there): read in this thread, each batch filled to its limit, so the batches, and with them
    the float32 roundings, are the same on every run."""
    if full:
        yield from _full_batches(units)
        return
    q: queue.Queue = queue.Queue(QUEUE_UNITS)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for unit in units:
                if not put(unit):
                    return
            put(_END)
        except BaseException as e:  # handed to the consumer, in order
            put(e)

    reader = threading.Thread(target=read, name="charrnn-read-units", daemon=True)
    reader.start()
    limit = FIRST_BATCH
    try:
        while True:
            item = q.get()
            batch: list[Unit] = []
            size = 0
            while True:
                if item is _END or isinstance(item, BaseException):
                    if batch:
                        yield batch
                    if item is _END:
                        return
                    raise item
                batch.append(item)
                size += len(item.raw)
                if len(batch) >= limit or size >= MAX_BATCH_BYTES:
                    break
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
            yield batch
            limit = min(2 * limit, MAX_BATCH)
    finally:
        stop.set()


def _full_batches(units: Iterator[Unit]) -> Iterator[list[Unit]]:
    limit, batch, size = FIRST_BATCH, [], 0
    for unit in units:
        batch.append(unit)
        size += len(unit.raw)
        if len(batch) >= limit or size >= MAX_BATCH_BYTES:
            yield batch
            batch, size, limit = [], 0, min(2 * limit, MAX_BATCH)
    if batch:
        yield batch


def score_stream(
    scorer: UnitScorer,
    units: Iterator[Unit],
    progress: Callable[[int], None] | None = None,
    full: bool = False,
) -> Iterator[list[Row]]:
    """Rows in input order, a batch at a time, each batch scored as soon as it has been read
    (full: see stream_batches); progress(bytes read) after each batch."""
    for batch in stream_batches(units, full):
        try:
            rows = scorer.score(batch)
        except Partial as p:  # the rows before the unit that failed, then its error
            yield p.rows
            raise p.error from None
        yield rows
        if progress is not None:
            progress(batch[-1].offset)
