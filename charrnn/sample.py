"""Generation: prime a model with a seed text, then draw characters one at a time.

Sampling rule (the same in the NumPy path below and the Numba kernels in charrnn/kernels/step.py):
temperature 0 is greedy (argmax, lowest id on ties). Otherwise p ~ exp((logit - max) / T) in
float64; top-k keeps the k most probable symbols (ties: lower id first); top-p then keeps the
smallest most-probable prefix of those whose mass reaches top_p of theirs; the draw is the
inverse CDF of what is left, in id order, at a uniform u from a numpy Generator. Each step draws
exactly K uniforms (one per sample, also for samples already stopped), so the text depends only
on the checkpoint, the prime, the options and the rng seed.

Engines. The first characters always come from the plain-NumPy step (charrnn/step.py), which
starts fast. For long outputs ("auto": see `_numba_pays`) a fused Numba kernel is loaded in a
background thread meanwhile and takes over at step `NUMBA_AFTER` exactly (waiting for it there if
need be), so the switch point, and with it the text, is the same on every run. The two engines
round differently, so forcing one engine or the other may give a different text.

Stop strings: a sample ends right after the first occurrence of any stop string in its
generated text (the seed is not searched); the stop string is included.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from charrnn.cpus import cpu_count
from charrnn.errors import CharrnnError, UsageError
from charrnn.partner import Pair
from charrnn.step import StepWeights, feed, step
from charrnn.vocab import Vocab

NUMBA_AFTER = 2048  # steps made by NumPy before the Numba kernel takes over (auto engine)
FEED_NUMBA_MIN = 20_000  # seeds longer than this are fed by the Numba kernel (auto engine)
LOADER_AFTER = 256  # steps made before the kernel starts loading in the background
ENGINES = ("auto", "numpy", "numba")


@dataclass(frozen=True)
class SampleOptions:
    length: int = 500  # characters generated per sample (the seed not counted)
    temperature: float = 1.0  # 0 = greedy
    top_k: int | None = None
    top_p: float | None = None
    num_samples: int = 1  # K samples, generated together as a batch
    stop: tuple[str, ...] = field(default_factory=tuple)

    def validate(self) -> SampleOptions:
        if self.length < 0:
            raise UsageError(f"--length must be 0 or more, got {self.length}")
        t = self.temperature
        if not (t >= 0 and np.isfinite(t)):
            raise UsageError(f"--temperature must be 0 (greedy) or positive, got {t}")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, got {self.top_k}")
        if self.top_p is not None and not (0 < self.top_p <= 1):
            raise UsageError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.num_samples < 1:
            raise UsageError(f"--num-samples must be at least 1, got {self.num_samples}")
        if any(s == "" for s in self.stop):
            raise UsageError("--stop needs a non-empty string")
        return self


@dataclass
class Piece:
    """Text generated for sample `row`; `done` once that sample has ended."""

    row: int
    text: str
    done: bool = False


def pick(
    logits: np.ndarray,
    u: np.ndarray,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
) -> np.ndarray:
    """One id per row from logits (B, V) and uniforms u (B,) in [0, 1). Returns (B,) int32."""
    if temperature == 0:
        return np.argmax(logits, axis=1).astype(np.int32)
    if logits.shape[0] == 1 and top_k is None and (top_p is None or top_p >= 1):
        return _pick_one(logits[0], float(u[0]), temperature)
    p = logits.astype(np.float64)  # (B, V), becomes the unnormalised probabilities
    p -= p.max(axis=1, keepdims=True)
    p /= temperature
    np.exp(p, out=p)
    nb, nv = p.shape
    kept = nv if top_k is None else min(top_k, nv)
    if kept < nv or (top_p is not None and top_p < 1):
        order = np.argsort(-p, axis=1, kind="stable")  # (B, V) most probable first
        keep = np.zeros((nb, nv), bool)
        keep[:, :kept] = True
        if top_p is not None and top_p < 1:
            cs = np.cumsum(np.take_along_axis(p, order[:, :kept], 1), axis=1)  # (B, kept)
            reach = cs >= top_p * cs[:, -1:]
            n_keep = np.argmax(reach, axis=1) + 1  # (B,) first prefix reaching the mass
            keep[:, :kept] = np.arange(kept) < n_keep[:, None]
        drop = np.zeros((nb, nv), bool)
        np.put_along_axis(drop, order, ~keep, axis=1)
        p[drop] = 0.0
    cs = np.cumsum(p, axis=1)  # (B, V)
    x = u * cs[:, -1]
    if nb == 1:  # the same count, faster for one row
        idx = np.searchsorted(cs[0], x, side="right")
    else:
        idx = (cs <= x[:, None]).sum(axis=1)  # first id whose cumulative mass exceeds x
    over = idx >= nv
    if over.any():  # rounding put x at the very top: take the last symbol still allowed
        idx[over] = nv - 1 - np.argmax(p[over][:, ::-1] > 0, axis=1)
    return idx.astype(np.int32)


def _pick_one(logits: np.ndarray, u: float, temperature: float) -> np.ndarray:
    """`pick` for one row without truncation, in fewer NumPy calls. logits (V,)."""
    cs = logits.astype(np.float64)
    cs -= cs.max()
    cs /= temperature
    np.exp(cs, out=cs)
    np.cumsum(cs, out=cs)
    i = int(np.searchsorted(cs, u * cs[-1], side="right"))
    if i >= cs.size:  # rounding put the draw at the very top: the last symbol with mass
        i = int(np.flatnonzero(np.diff(cs, prepend=0.0) > 0)[-1])
    return np.array([i], np.int32)


def prime_ids(
    vocab: Vocab,
    seed: str | None,
    *,
    num_samples: int = 1,
    seed_random: bool = False,
    unk: str = "error",
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The ids (K, T) fed before sampling, and the text each sample starts with (for echoing).

    A seed is encoded (unknown characters: error or skip). With no seed (or one left empty by
    skip): `seed_random` draws one random symbol per sample from `rng` (it counts as the seed);
    otherwise a newline is fed, or a space, or the lowest symbol of the vocabulary, whichever it
    has first; that start symbol is not part of the text."""
    k = num_samples
    if seed:
        ids = vocab.encode(seed, unk=unk)
        if ids.size:
            return np.tile(ids, (k, 1)).astype(np.int32), [seed] * k
    if seed_random:
        if rng is None:
            raise ValueError("seed_random needs an rng")
        ids = rng.integers(0, len(vocab), size=(k, 1)).astype(np.int32)
        return ids, [vocab.decode(r) for r in ids]
    start = next((ch for ch in ("\n", " ") if ord(ch) in set(vocab.codepoints.tolist())), None)
    sid = int(vocab.encode(start)[0]) if start is not None else 0
    return np.full((k, 1), sid, np.int32), [seed or ""] * k


# ----------------------------------------------------------------------------------- engines


class NumpyEngine:
    """Plain-NumPy steps. State: the recurrent state (L, B, H) and each row's pending input."""

    name = "numpy"

    def __init__(self, w: StepWeights, state, pending: np.ndarray) -> None:
        self.w, self.state, self.pending = w, state, pending

    def feed(self, ids: np.ndarray) -> None:
        """Feed ids (B, T) through the model (no sampling)."""
        _, self.state = feed(self.w, ids, self.state)

    def run(self, u: np.ndarray, o: SampleOptions) -> np.ndarray:
        """T steps: feed the pending ids, draw the next with u (T, B). Returns ids (T, B)."""
        out = np.empty(u.shape, np.int32)
        for t in range(u.shape[0]):
            logits, self.state = step(self.w, self.pending, self.state)
            self.pending = out[t] = pick(logits, u[t], o.temperature, o.top_k, o.top_p)
        return out

    def keep(self, rows: np.ndarray) -> None:
        self.state = tuple(np.ascontiguousarray(s[:, rows]) for s in self.state)
        self.pending = self.pending[rows]


class NumbaEngine(NumpyEngine):
    """The cell's fused kernel (its `run`, see charrnn/kernels/step.py), same interface and
    state layout. With threads=2 (the default on two cores or more) each call is split over
    this thread and a partner thread; the text is the same as with one."""

    name = "numba"

    def __init__(self, w: StepWeights, state, pending: np.ndarray, threads: int = 0) -> None:
        from charrnn.step import PARTS, split

        super().__init__(w, tuple(np.ascontiguousarray(s, np.float32) for s in state), pending)
        self.kernel = w.cell.k.run
        self.parts = split(w, PARTS)
        self.threads = max(1, min(PARTS, threads or cpu_count()))
        self.pair = Pair(self.threads)
        self.pending = self._ids(pending)
        self._call(np.zeros((0, self.pending.size)), np.empty((0, self.pending.size), np.int32),
                   False, SampleOptions())  # load or compile now, on one thread  # fmt: skip

    def _ids(self, ids: np.ndarray) -> np.ndarray:
        """ids as C-contiguous int32, checked: the kernel indexes without bounds checks."""
        ids = np.ascontiguousarray(ids, np.int32)
        if ids.size and (ids.min() < 0 or ids.max() >= self.w.vocab_size):
            raise ValueError(f"symbol ids must be in [0, {self.w.vocab_size})")
        return ids

    def _call(self, u: np.ndarray, out: np.ndarray, feeding: bool, o: SampleOptions) -> None:
        w, parts = self.w, self.parts
        nv = w.vocab_size
        h = self.state[0]
        args = (
            parts.wts, w.dec_t, w.dec_b, h, self.state[-1], np.empty((2, *h.shape), np.float32),
            w.cell.fused_work(h.shape[1]), self.pending, u, float(o.temperature),
            nv if o.top_k is None else int(min(o.top_k, nv)),
            1.0 if o.top_p is None else float(o.top_p),
            out, feeding,
        )  # fmt: skip
        self.pair.run(self.kernel, args, parts.table.shape[0], out.shape[0])

    def feed(self, ids: np.ndarray) -> None:
        out = self._ids(ids.T)  # (T, B)
        self._call(np.zeros((0, out.shape[1])), out, True, SampleOptions())

    def run(self, u: np.ndarray, o: SampleOptions) -> np.ndarray:
        out = np.empty(u.shape, np.int32)
        self._call(np.ascontiguousarray(u), out, False, o)
        return out


def warm_numba(w: StepWeights) -> None:
    """Import numba and load (or compile) the kernel for this cell, with an empty call."""
    eng = NumbaEngine(w, w.zero_state(1), np.zeros(1, np.int32))
    eng.run(np.zeros((0, 1)), SampleOptions())


class _Loader(threading.Thread):
    """Loads the Numba kernel in the background; `error` holds what went wrong, if anything."""

    def __init__(self, w: StepWeights) -> None:
        super().__init__(name="charrnn-numba-loader", daemon=True)
        self.w, self.error = w, None

    def run(self) -> None:
        try:
            warm_numba(self.w)
        except Exception as e:  # numba missing or broken: stay on NumPy
            self.error = e


def _numba_pays(w: StepWeights, steps: int, batch: int) -> bool:
    """Whether loading the kernel (0.5-1 s of work in the background) pays for this much output.

    On one core both engines do the matrix products about as fast (BLAS vs loops, memory-bound
    alike); the kernel saves NumPy's per-call overhead (~30 us a layer, ~20 us a draw) and its
    slow elementwise tanh (~2.5 ns per gate value): measured on a 2x256 LSTM, 90 us a step at
    batch 1, 135 us at batch 16. On two cores it also halves the matrix time; not counted here."""
    rest = steps - NUMBA_AFTER
    if rest <= 0:
        return False
    gate_values = batch * w.layers * w.w_hh_t.shape[2]
    saved_per_step = 30e-6 * w.layers + 20e-6 + 2.5e-9 * gate_values  # seconds, rough
    return rest * saved_per_step > 1.5


# ---------------------------------------------------------------------------------- generate


def _feed_long(eng: NumpyEngine, ids: np.ndarray) -> NumpyEngine:
    """Feed a long seed (B, T) through the Numba kernel (loaded now: it pays), then go on
    with NumPy; stays on NumPy if numba cannot be loaded."""
    try:
        fast = NumbaEngine(eng.w, eng.state, eng.pending)
    except ImportError:
        eng.feed(ids)
        return eng
    fast.feed(ids)
    return NumpyEngine(eng.w, fast.state, fast.pending)


def _chunks(total: int, switch: int | None) -> Iterator[int]:
    """Steps per chunk: 1 first (the first character out at once), then growing to 256 (NumPy,
    about 30 ms) or 2048 from step `switch` on (Numba; None: never); never across `switch`.
    Output is written after each chunk, so a closed pipe is noticed within one chunk."""
    size, done = 1, 0
    while done < total:
        if switch is not None and done < switch:
            n = min(size, switch - done, 256)
        else:
            n = min(size, 256 if switch is None else 2048)
        n = min(n, total - done)
        yield n
        done += n
        size *= 4


def generate(
    w: StepWeights,
    vocab: Vocab,
    prime: np.ndarray,
    options: SampleOptions,
    rng: np.random.Generator,
    engine: str = "auto",
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Piece]:
    """Sample `options.length` characters for each of the K rows of prime (K, T) int32.

    Yields Pieces as they are made: each sample's text in order; every row ends with one
    Piece with done=True (possibly with empty text). on_wait(message) is called when the text
    has to wait for the kernel at the switch (its first compilation, about 16 s)."""
    o = options.validate()
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    k = prime.shape[0]
    if k != o.num_samples:
        raise ValueError(f"prime has {k} rows for {o.num_samples} samples")
    if o.length == 0:
        for r in range(k):
            yield Piece(r, "", True)
        return
    use_numba = engine == "numba" or (engine == "auto" and _numba_pays(w, o.length, k))
    loader = _Loader(w) if use_numba and engine == "auto" else None

    same = bool((prime == prime[:1]).all())  # one seed for all: feed it once, then copy
    rows = 1 if same else k
    eng: NumpyEngine = NumpyEngine(w, w.zero_state(rows), prime[:rows, -1].astype(np.int32))
    if engine == "numba":
        eng = NumbaEngine(w, eng.state, eng.pending)
    if prime.shape[1] > 1:
        if engine == "auto" and prime.shape[1] > FEED_NUMBA_MIN:
            eng = _feed_long(eng, prime[:rows, :-1])
        else:
            eng.feed(prime[:rows, :-1])
    if same and k > 1:
        eng.keep(np.zeros(k, np.intp))  # row 0, k times

    alive = np.arange(k)  # rows still generating
    maxstop = max((len(s) for s in o.stop), default=0)
    tails = [""] * k  # last maxstop-1 generated chars of each row
    switch = NUMBA_AFTER if loader is not None else None
    chars = vocab.chars
    done = 0
    for n in _chunks(o.length, 0 if engine == "numba" else switch):
        if loader is not None and loader.ident is None and done >= LOADER_AFTER:
            loader.start()  # not at once: a short read (`| head`) should not pay for it
        if loader is not None and done == switch:
            if loader.ident is None:
                loader.start()
            loader.join(0.5)
            if loader.is_alive() and on_wait is not None:
                on_wait("compiling the fast sampling kernel (the first time only; cached after)")
            loader.join()
            if loader.error is None:
                eng = NumbaEngine(w, eng.state, eng.pending)
            loader = None
        u = rng.random((n, k))  # (T, K): K uniforms per step, always
        out = eng.run(u[:, alive], o)  # (T, B alive)
        done += n
        finished = np.zeros(alive.size, bool)
        for j, r in enumerate(alive):
            text = "".join(map(chars.__getitem__, out[:, j].tolist()))
            if maxstop:
                cut = _stop_cut(tails[r], text, o.stop)
                if cut is not None:
                    text, finished[j] = text[:cut], True
                else:
                    tails[r] = (tails[r] + text)[-(maxstop - 1) :] if maxstop > 1 else ""
            last = done >= o.length
            yield Piece(int(r), text, bool(finished[j] or last))
        if finished.any():
            alive = alive[~finished]
            if alive.size == 0:
                return
            eng.keep(~finished)


def _stop_cut(tail: str, text: str, stops: tuple[str, ...]) -> int | None:
    """Length of `text` to keep when a stop string ends in it (tail + text), else None."""
    joined = tail + text
    ends = [i + len(s) for s in stops if (i := joined.find(s)) >= 0]
    return min(ends) - len(tail) if ends else None


def sample_texts(
    w: StepWeights,
    vocab: Vocab,
    prime: np.ndarray,
    options: SampleOptions,
    rng: np.random.Generator,
    engine: str = "auto",
) -> list[str]:
    """All K generated texts (seed not included), for scripts and tests."""
    texts = [""] * prime.shape[0]
    for piece in generate(w, vocab, prime, options, rng, engine):
        texts[piece.row] += piece.text
    return texts


def check_finite(w: StepWeights) -> None:
    """Refuse weights holding NaN or infinity (a diverged run)."""
    if not all(np.isfinite(a).all() for a in w.arrays()):
        raise CharrnnError("the model's weights hold NaN or infinity: use an earlier checkpoint")
