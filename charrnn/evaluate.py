"""Scoring a text with a model: one stateful pass, mean nats, bits per character, perplexity.

What is scored. For a text of N characters c_1..c_N, the model starts from the zero state and
reads the text once, in order; character c_{t+1} is scored by -log p(c_{t+1} | c_1..c_t) for
t = 1..N-1. So N - 1 characters are scored (the first one is only context: a model has no
distribution for it before it has read anything), exactly as training scores its validation
split. The hidden state is carried from the first character to the last.

How fast. Read one character at a time, the pass is a chain of matrix-vector products that reads
every recurrent weight once per character. Two ways to go faster, chosen by measuring how fast
the model forgets (never by timing):

- The single pass split by unit (splitpass.py): each core makes half of every layer's units,
  reading only its half of the weights, and the cores meet after every layer step. Nothing is
  guessed; one core or two give the same bits. This is `streams=1`, and what a model that
  remembers long gets.
- Segments (`streams` > 1): the text is cut into S segments scored side by side as one batch
  (one weight read serves several characters; the rows are shared out over the cores, each core
  running its rows start to end on its own), each checked against the state the pass carries
  into it:
  1. Segment 0 starts from the carried state, as the single pass does. Every other segment
     starts `burn_in` characters before its first scored one, from the zero state, and reads
     those unscored: a guess of the state at its start.
  2. Then the state carried to the start of each segment s (the end state of segment s-1) is
     compared with segment s's guess. If every h (and c) value agrees within STATE_RTOL (1e-5
     relative: a few dozen float32 roundings), segment s is kept. If not, it is recomputed
     from the carried state (by the split single pass), `check` characters at a time,
     comparing with the guess's states stored every `check` characters; from the first that
     agrees on, the guess is kept. All segments are checked together as one batch, each
     assuming the one before it keeps its guess (its row's end state is then what it carries
     on); a segment after one that had to be recomputed to its very end is checked again,
     alone, from the state that one really ends in. `Score.recomputed` counts the characters
     recomputed and `Score.state_gap` the largest relative gap accepted.

By default (`streams=0`, `burn_in=None`) the pass measures first: it starts as the split single
pass, and twice a guess rides along with it (one extra row, nearly free: the weights read for
the pass serve it too), started from the zero state and reading the same characters; every
`check` characters the guess's state is compared with the pass's. The characters a guess needs
to agree within PROBE_RTOL (half STATE_RTOL), and still agree `check` characters later, is the
model's burn-in (a guess whose gap closes too slowly to get there is given up on early). If
both guesses agree within MAX_BURN_IN characters, and the text is long enough for the segments'
burn-ins to cost at most BURN_IN_SHARE of it, the rest of the text is scored as segments with
that burn-in; otherwise the split single pass goes on to the end. A trained model that
remembers long (its guesses never agree) so costs the single pass and a guess riding along for a
while; a random or lightly trained one, which forgets within a few hundred characters, gets the
segments' speed. The measuring is done at the text's start: a model whose memory differs along
the text (one that falls into different long-lived states) may still have segments recomputed,
which costs time, never exactness.

Why a tolerance and not equality: two float32 runs of a trained LSTM from different states come
within a few roundings of each other and then stay there, never bit for bit equal (rounding
keeps nudging them apart: measured on a tinyshakespeare model, ~400 of 512 values differ by
~1e-6 after 1,000 and after 40,000 characters). So the segmented figure equals the single
pass's to float32 precision (1e-9 relative on the models we measured), and a model that still
remembers its segment's start after the burn-in is caught by the check and recomputed
rather than guessed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.cpus import cpu_count
from charrnn.errors import CharrnnError, CheckpointError, CorpusError, UsageError
from charrnn.vocab import Vocab, escape

LN2 = math.log(2.0)
DEFAULT_CHUNK = 2048  # steps per call of the single pass
DEFAULT_BURN_IN = None  # None: measured (see the module doc)
MAX_BURN_IN = 2048  # the longest burn-in the measurement looks for
DEFAULT_CHECK = 256  # steps per call of the segmented pass, and between stored states
MAX_CHECKS = 64  # stored states per segment after its burn-in
ROWS_PER_CORE = 6  # segments per core by default: a 6-row tile keeps 12 accumulators busy
GROUP_ROWS = 4  # rows per core, at least, in the segmented pass
STATE_RTOL = 1e-5  # a guess is kept when |guess - carried| <= STATE_RTOL * max(1, |carried|)
PROBE_RTOL = STATE_RTOL / 2  # a measuring guess must agree twice as closely
PROBES = 2  # guesses measured before choosing segments
BURN_IN_SHARE = 0.25  # measured segments only when their burn-ins cost at most this share


# --------------------------------------------------------------------------------- results


@dataclass
class Score:
    """The result of scoring one text with one model."""

    chars: int  # characters scored (N - 1 for a text of N)
    total_nats: float  # sum of -log p over the scored characters
    seconds: float = 0.0
    surprisal: np.ndarray | None = None  # (N-1,) float64 nats per scored character, if kept
    streams: int = 1  # segments scored side by side (1: the single pass)
    burn_in: int = 0  # characters each segment but the first read before its first score
    recomputed: int = 0  # characters recomputed one at a time after a segment's guess differed
    state_gap: float = 0.0  # largest relative state gap between a kept guess and the carried state
    # characters the measuring guesses needed to agree with the pass (the largest), None when
    # one never did within MAX_BURN_IN; 0 when nothing was measured
    measured: int | None = 0

    @property
    def nats_per_char(self) -> float:
        return self.total_nats / self.chars if self.chars else float("nan")

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / LN2

    @property
    def perplexity(self) -> float:
        try:
            return math.exp(self.nats_per_char)
        except OverflowError:
            return float("inf")

    @property
    def chars_per_second(self) -> float:
        return self.chars / self.seconds if self.seconds > 0 else float("nan")


# --------------------------------------------------------------------------------- scoring


def score_ids(
    model,
    ids: np.ndarray,
    *,
    chunk: int = DEFAULT_CHUNK,
    threads: int = 0,
    keep: bool = False,
    progress: Callable[[int], None] | None = None,
    streams: int = 0,
    burn_in: int | None = DEFAULT_BURN_IN,
    check: int = DEFAULT_CHECK,
) -> Score:
    """Score ids (N,) (model vocabulary, any integer dtype, a memmap is fine) in one stateful pass.

    chunk: steps per call of the single pass; threads: 0 = all cores; keep: keep every
    character's surprisal; progress(k) is called with the characters scored so far. streams:
    segments scored side by side (0: ROWS_PER_CORE per core when segments pay; 1: the single
    pass; fewer when the text is short); burn_in: characters each segment reads before its first
    score (None: measured, and segments only when the model forgets within MAX_BURN_IN); check:
    steps per call of the segmented pass and between its stored states (burn_in is rounded up to
    a multiple of it). Whatever these are, the figure is the single pass's to float32 precision
    (see the module doc).
    """
    from charrnn.splitpass import SplitPass

    if chunk < 1 or check < 1:
        raise UsageError(f"chunk and check must be at least 1, got {chunk}, {check}")
    if threads < 0:
        raise UsageError(f"threads must be 0 (all cores) or positive, got {threads}")
    if streams < 0 or (burn_in is not None and burn_in < 0):
        raise UsageError(
            f"streams must be 0 (auto) or positive and burn-in 0 or more, got {streams}, {burn_in}"
        )
    n = int(ids.shape[0])
    if n < 2:
        raise CharrnnError(
            f"the text has {n} character(s): scoring needs at least 2 (the first is context)"
        )
    from charrnn.footprint import check_scoring

    threads = threads or cpu_count()
    steps = n - 1
    rows = streams or ROWS_PER_CORE * threads
    # memory, before allocating: as if it all went to as many segments as the text allows
    most = _segments(steps, rows, check, check) if streams != 1 else None
    check_scoring(model.config, n, most[0] if most else 1, threads, keep, chunk)
    model = model.copy(threads, frozen=True)  # weights derived once per pass, not per call
    exact = SplitPass(model, threads)
    tally = _Tally(np.empty(n - 1, np.float64) if keep else None, progress)
    t0 = time.perf_counter()
    start, state, measured, segs, W = 0, model.zero_state(1), 0, None, 0
    if streams != 1 and burn_in is not None:  # segments as asked
        W = -(-burn_in // check) * check
        segs = _segments(steps, rows, W, check)
    elif streams != 1 and _segments(steps, rows, check, check, BURN_IN_SHARE) is not None:
        start, state, measured = _measure(exact, model, ids, check, tally)
        if measured is not None:
            W = measured
            segs = _segments(steps - start, rows, W, check, BURN_IN_SHARE)
    if segs is None:
        _exact_pass(exact, ids, start, steps, state, chunk, tally)
        return Score(steps, tally.total(), time.perf_counter() - t0, tally.surprisal,
                     measured=measured)  # fmt: skip
    recomputed, gap = _segmented_pass(model, exact, ids, start, state, segs, W, check, tally)
    return Score(steps, tally.total(), time.perf_counter() - t0, tally.surprisal, segs[0], W,
                 recomputed, gap, measured)  # fmt: skip


class _Tally:
    """The nats scored so far, in pieces summed exactly at the end (math.fsum), every
    character's surprisal when kept, and the progress callback."""

    def __init__(self, surprisal: np.ndarray | None, progress: Callable[[int], None] | None):
        self.surprisal, self.progress = surprisal, progress
        self.sums: list[float] = []
        self.scored = 0  # characters scored before the segmented pass (progress counts on)

    def add(self, start: int, nll: np.ndarray) -> None:
        """The nats (t,) of positions start..start+t-1 of a pass run in order."""
        self.sums.append(math.fsum(nll))
        if self.surprisal is not None:
            self.surprisal[start : start + nll.size] = nll
        self.scored = start + nll.size
        if self.progress is not None:
            self.progress(self.scored)

    def total(self) -> float:
        return math.fsum(self.sums)


def _segments(
    steps: int, streams: int, burn_in: int, check: int, share: float | None = None
) -> tuple[int, int] | None:
    """(S, R): S rows of R steps (a multiple of check) covering `steps` characters read, row s
    reading from s * (R - burn_in); the most rows, up to `streams`, whose segments are at least
    as long as the burn-in and each have something to score, and (with `share`) whose burn-ins
    add at most that share of the steps. None: too short, one pass."""
    # a segment scores at least max(burn_in, check) steps, so no more than this many fit
    most = steps // max(burn_in, check, 1) + 1
    for S in range(min(streams, most), 1, -1):
        if share is not None and (S - 1) * burn_in > share * steps:
            continue
        R = -(-(steps + (S - 1) * burn_in) // S)
        R = -(-R // check) * check
        if R - burn_in >= max(burn_in, check) and (S - 1) * (R - burn_in) + burn_in < steps:
            return S, R
    return None


def _exact_pass(exact, ids, start, stop, state, chunk, tally: _Tally) -> tuple:
    """The split single pass over positions start..stop-1 from `state`, `chunk` characters per
    call; returns the state after it."""
    for a in range(start, stop, chunk):
        b = min(a + chunk, stop)
        nll, state = exact.nll(*_chunk_ids(ids, a, b), state)  # (1, t)
        tally.add(a, nll[0])
    return state


def _measure(exact, model, ids, C: int, tally: _Tally) -> tuple[int, tuple, int | None]:
    """The start of the split single pass, with PROBES guesses riding along one after another
    (see the module doc): after a first C characters, a guess joins from the zero state and
    reads what the pass reads, C characters per call, until its state has agreed with the
    pass's within PROBE_RTOL at two checks in a row, or MAX_BURN_IN characters have gone by, or
    the gap closes too slowly to get there (its rate over the last two checks, kept up to
    MAX_BURN_IN, would leave it over 100 times PROBE_RTOL: a model that remembers long, given up
    on early). Returns the position reached, the pass's state there, and the
    largest number of characters a guess needed to agree (a multiple of C; None when one never
    did, or the text ran out first)."""
    steps = int(ids.shape[0]) - 1
    state = _exact_pass(exact, ids, 0, C, model.zero_state(1), C, tally)
    pos, needed = C, 0
    for _ in range(PROBES):
        guess, joined, agreed, gaps = model.zero_state(1), pos, 0, []
        while True:
            if pos + C > steps or pos - joined >= MAX_BURN_IN + C:
                return pos, state, None
            x, y = _chunk_ids(ids, pos, pos + C)
            both = tuple(np.concatenate(pair, axis=1) for pair in zip(state, guess, strict=True))
            nll, both = exact.nll(np.repeat(x, 2, 0), np.repeat(y, 2, 0), both)  # (2, C)
            tally.add(pos, nll[0])
            state = tuple(a[:, :1].copy() for a in both)
            guess = tuple(a[:, 1:].copy() for a in both)
            pos += C
            gaps.append(_gap(guess, state, 0))
            if gaps[-1] > PROBE_RTOL and len(gaps) >= 3:
                rate = math.sqrt(gaps[-1] / gaps[-3]) if gaps[-3] > 0 else 1.0  # per check
                left = (MAX_BURN_IN + C - (pos - joined)) // C  # checks still allowed
                if rate >= 1.0 or gaps[-1] * rate**left > 100 * PROBE_RTOL:
                    return pos, state, None
            if gaps[-1] > PROBE_RTOL:
                agreed = 0
            elif agreed:  # and it still agrees, C characters on
                needed = max(needed, agreed - joined)
                break
            else:
                agreed = pos
    return pos, state, needed


def _read(ids: np.ndarray, pos: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x = ids[pos], y = ids[pos + 1] as intp arrays shaped like pos; where not valid (past a
    row's end), any id: those steps are not scored."""
    x = np.asarray(ids[np.where(valid, pos, 0)], dtype=np.intp)
    y = np.asarray(ids[np.where(valid, pos + 1, 0)], dtype=np.intp)
    return x, y


def _chunk_ids(ids: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """x = ids[start:stop], y = ids[start+1:stop+1] as (1, t) intp."""
    x = np.asarray(ids[start:stop], dtype=np.intp)[None]
    y = np.asarray(ids[start + 1 : stop + 1], dtype=np.intp)[None]
    return x, y


def _segmented_pass(model, exact, ids, start, init, segs, W, C, tally) -> tuple[int, float]:
    """Steps 1 and 2 of the module doc over positions start.. from the carried state `init`
    (L, 1, width each); returns the characters recomputed and the largest gap accepted.
    Position i means reading ids[i] and scoring ids[i+1]; row s reads positions q_s + tau for
    tau in [0, R) and scores tau >= W (row 0: all).

    Step 1 runs the rows in groups, one per core, each group start to end on its own copy of
    the model (no meeting between cores per call); step 2 recomputes with `exact` (the split
    single pass)."""
    S, R = segs
    P = int(ids.shape[0]) - 1  # positions
    M = R // C  # chunks per row
    q = start + np.arange(S) * (R - W)  # (S,) first position of each row
    sums = np.zeros((S, M))  # nats per row and chunk, scored steps only
    K = min(MAX_CHECKS, M - W // C)  # states kept per row after its burn-in
    state = model.zero_state(S)  # becomes each row's end state
    checks = [tuple(np.empty_like(a) for a in state) for _ in range(K + 1)]  # at W + k*C
    geo = _Rows(ids, q, W, C, R, P, K, checks, init)
    surprisal, before = tally.surprisal, tally.scored
    progress = None if tally.progress is None else (lambda k: tally.progress(before + k))
    groups = min(model.threads, S // GROUP_ROWS) or 1
    bounds = [g * S // groups for g in range(groups + 1)]
    done = [0] * groups  # characters scored by each group so far
    stop = threading.Event()  # set: the groups return at their next chunk (Ctrl-C)
    if groups == 1:
        _guess(model, geo, slice(0, S), sums, state, surprisal, done, 0, progress, stop)
    else:
        from concurrent.futures import ThreadPoolExecutor, wait

        copies = [model.copy(threads=1, frozen=True) for _ in range(groups)]
        # set up BLAS, and derive the shared weights once, before the groups start
        warm = np.zeros((GROUP_ROWS, -(-model.config.vocab_size // GROUP_ROWS)), np.intp)
        copies[0].nll(warm, warm)
        with ThreadPoolExecutor(groups, thread_name_prefix="eval") as pool:
            try:
                futures = [
                    pool.submit(_guess, copies[g], geo, slice(bounds[g], bounds[g + 1]), sums,
                                state, surprisal, done, g, None, stop)
                    for g in range(groups)
                ]  # fmt: skip
                while wait(futures, timeout=0.2).not_done:
                    if progress is not None:
                        progress(sum(done))
                for f in futures:
                    f.result()
            except BaseException:
                stop.set()
                raise
        if progress is not None:
            progress(sum(done))
    ends = [tuple(a[:, s : s + 1].copy() for a in state) for s in range(S)]  # each row's end
    # every segment's check at once, assuming the segment before it keeps its guess (then the
    # state it carries is its row's end); a segment after one recomputed to its very end is
    # done again below from the state that one really ends in
    first_try = _recheck(exact, geo, list(range(1, S)), ends[:-1])
    recomputed, worst = 0, 0.0
    carried_ok = True  # the state carried into segment s is the one first_try assumed
    for s in range(1, S):
        r = first_try[s - 1] if carried_ok else _recheck(exact, geo, [s], [ends[s - 1]])[0]
        for m, a, nll in r.chunks:
            sums[s, m] = nll.sum()
            if surprisal is not None:
                surprisal[a : a + nll.size] = nll
            recomputed += nll.size
        if r.end is None:  # the guess was kept from some check on: row s's own end stands
            worst = max(worst, r.gap)
            carried_ok = True
        else:
            ends[s] = r.end
            carried_ok = False
    tally.sums.append(math.fsum(sums.ravel()))
    return recomputed, worst


def _guess(model, g: _Rows, rows: slice, sums, ends, surprisal, done, group, progress, stop):
    """Step 1 for rows `rows`: read them chunk by chunk from the zero state (row 0 from the
    carried state g.init), writing their nats into sums (and surprisal), their states at each
    check into g.checks and their end states into ends; done[group] counts the characters
    scored. Returns early once `stop` (a threading.Event) is set."""
    q = g.q[rows]  # (B,)
    first = np.where(np.arange(rows.start, rows.stop) == 0, 0, g.W)  # (B,) first scored step
    state = model.zero_state(q.size)
    if rows.start == 0:
        for a, b in zip(state, g.init, strict=True):
            a[:, :1] = b
    if g.W == 0:
        for a, b in zip(g.checks[0], state, strict=True):
            a[:, rows] = b
    for m in range(g.R // g.C):
        if stop.is_set():
            return
        tau = m * g.C + np.arange(g.C)  # (C,)
        pos = q[:, None] + tau[None, :]  # (B, C)
        valid = pos < g.P
        x, y = _read(g.ids, pos, valid)
        nll, state = model.nll(x, y, state)  # (B, C)
        scored = valid & (tau[None, :] >= first[:, None])
        sums[rows, m] = np.where(scored, nll, 0.0).sum(axis=1)
        if surprisal is not None:
            surprisal[pos[scored]] = nll[scored]
        k, rest = divmod((m + 1) * g.C - g.W, g.C)
        if rest == 0 and 0 <= k <= g.K:
            for a, b in zip(g.checks[k], state, strict=True):
                a[:, rows] = b
        done[group] += int(scored.sum())
        if progress is not None:
            progress(done[group])
    for a, b in zip(ends, state, strict=True):
        a[:, rows] = b


@dataclass
class _Rows:
    """Where the rows of a segmented pass lie, and their stored states (see _segmented_pass)."""

    ids: np.ndarray
    q: np.ndarray  # (S,) first position each row reads
    W: int
    C: int
    R: int
    P: int
    K: int
    checks: list  # K + 1 states (L, S, H) each: every row's after W + k*C steps
    init: tuple  # row 0's initial state, (L, 1, H) each: the state carried to position q[0]


@dataclass
class _Check:
    """What checking one segment found: the chunks recomputed (chunk index, first position,
    nats), its end state if it was recomputed to the end (else its guess was kept), the gap."""

    chunks: list = field(default_factory=list)
    end: tuple | None = None
    gap: float = 0.0


def _recheck(exact, g: _Rows, rows: list[int], carried: list) -> list[_Check]:
    """Check segments `rows` against the states carried into them ((L, 1, H) tuples), all as
    one batch: at each stored state k, a row that agrees is done (its guess is kept from
    there); the others are recomputed one chunk further from the carried state by `exact`
    (the split single pass)."""
    out = [_Check() for _ in rows]
    st = tuple(np.concatenate(parts, axis=1) for parts in zip(*carried, strict=True))
    active = list(range(len(rows)))
    k = 0
    while active:
        still = []
        for j in active:
            row = tuple(a[:, j : j + 1] for a in st)
            gap = _gap(row, g.checks[k], rows[j]) if k <= g.K else math.inf
            if gap <= STATE_RTOL:
                out[j].gap = gap
            else:
                still.append(j)
        active = still
        if not active:
            break
        start = g.q[[rows[j] for j in active]] + g.W + k * g.C  # (A,)
        end = np.minimum(g.q[[rows[j] for j in active]] + g.R, g.P)  # (A,)
        pos = start[:, None] + np.arange(g.C)[None, :]  # (A, C)
        valid = pos < end[:, None]
        x, y = _read(g.ids, pos, valid)
        nll, new = exact.nll(x, y, tuple(a[:, active] for a in st))
        for a, b in zip(st, new, strict=True):
            a[:, active] = b
        for i, j in enumerate(active):
            out[j].chunks.append((g.W // g.C + k, int(start[i]), nll[i][valid[i]]))
            if end[i] <= start[i] + g.C:  # recomputed to the segment's end
                out[j].end = tuple(a[:, j : j + 1].copy() for a in st)
        active = [j for j in active if out[j].end is None]
        k += 1
    return out


def _gap(state, stored, s: int) -> float:
    """Largest |stored - state| / max(1, |state|) between a (L, 1, H) state and row s of a stored
    (L, S, H) one (0.0 when they are equal)."""
    worst = 0.0
    for a, b in zip(state, stored, strict=True):
        x, y = a[:, 0].astype(np.float64), b[:, s].astype(np.float64)
        worst = max(worst, float(np.max(np.abs(y - x) / np.maximum(1.0, np.abs(x)))))
    return worst


# --------------------------------------------------------------------------------- texts


@dataclass
class Text:
    """A text to score, as ids in some vocabulary (usually a memory-mapped corpus)."""

    label: str  # how tables name it: the file, "<stdin>", or "test split of NAME"
    ids: np.ndarray  # (N,) ids in `vocab`
    vocab: Vocab
    split: str | None = None  # "test" when it is a checkpoint's own test split
    corpus: dict[str, Any] | None = None  # fingerprint of the file(s) it came from


def read_text(source: str, as_bytes: bool = False) -> Text:
    """A text file (or "-" for stdin), read like a training corpus (UTF-8, BOM dropped); for a
    byte model, its bytes as they are (byte b is the symbol chr(b))."""
    from charrnn.data import load_corpus

    corpus = load_corpus([source], encoding="latin-1" if as_bytes else "utf-8")
    label = "<stdin>" if source == "-" else source
    return Text(label, corpus.ids, corpus.vocab, None, dict(corpus.fingerprint))


def test_split(meta: dict[str, Any], where: str = "the checkpoint") -> Text:
    """The test split of the corpus a checkpoint was trained on, cut exactly as training cut it.

    Needs meta["corpus"] (sources, sha256) and meta["train_config"] (val/test fractions); the
    files must still be there with the same content. Anything else: one CharrnnError line.
    """
    from charrnn.config import TrainConfig
    from charrnn.data import load_corpus, split_ids

    fp = meta.get("corpus")
    if not isinstance(fp, dict) or not fp.get("sha256") or "train_config" not in meta:
        raise CorpusError(
            f"{where} does not say which corpus it was trained on: give a text to score "
            "(charrnn eval FILE)"
        )
    sources = fp.get("sources") or []
    if not isinstance(sources, list) or not sources:
        raise CorpusError(
            f"{where} was trained on stdin, so its test split cannot be found: give a text to "
            "score (charrnn eval FILE)"
        )
    sources = [str(s) for s in sources]
    missing = [s for s in sources if not Path(s).exists()]
    if missing:
        raise CorpusError(
            f"{where} was trained on {', '.join(sources)}; {missing[0]} is not found: put it "
            "back to score the test split, or give a text (charrnn eval FILE)"
        )
    try:
        cfg = TrainConfig.from_dict(meta["train_config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where} has a damaged train_config ({e})") from None
    from charrnn.sources import expand

    as_bytes = fp.get("encoding") == "bytes"  # a byte model: byte b is the symbol chr(b)
    encoding = "latin-1" if as_bytes else fp.get("encoding", "utf-8")
    errors = fp.get("errors", "strict")
    files = expand(sources, fp.get("glob"), encoding, errors, as_bytes=as_bytes).files
    corpus = load_corpus(files, encoding=encoding, errors=errors)
    if corpus.fingerprint.get("sha256") != fp.get("sha256"):
        raise CorpusError(
            f"{', '.join(sources)} changed since {where} was trained on it (sha256 "
            f"{str(fp.get('sha256'))[:12]}... expected, {corpus.fingerprint['sha256'][:12]}... "
            "found): restore that file, or give a text (charrnn eval FILE)"
        )
    _, _, test = split_ids(len(corpus.ids), cfg.val_fraction, cfg.test_fraction)
    if test.stop - test.start < 2:
        raise CorpusError(
            f"{where} was trained with --test-fraction 0 (no test split): give a text to score "
            "(charrnn eval FILE)"
        )
    ids = corpus.ids[test]
    label = f"test split of {fp.get('name') or corpus.name}"
    return Text(label, ids, corpus.vocab, "test", dict(corpus.fingerprint))


def to_model_ids(text: Text, vocab: Vocab, unk: str = "error") -> tuple[np.ndarray, int]:
    """The text's ids (N,) re-coded in the model's vocabulary, and how many characters were
    skipped. unk="error": a CharrnnError naming the characters the model does not know."""
    if unk not in ("error", "skip"):
        raise UsageError(f"--unk must be error or skip, got {unk!r}")
    if text.vocab == vocab:
        return text.ids, 0
    src = text.vocab.codepoints.astype(np.int64)  # (Vt,)
    idx = np.minimum(np.searchsorted(vocab.codepoints, src), len(vocab) - 1)
    known = vocab.codepoints[idx] == src  # (Vt,)
    lut = np.where(known, idx, -1)  # (Vt,) text id -> model id, -1 unknown
    if not known.all() and unk == "error":
        bad = [chr(int(c)) for c in src[~known]]
        shown = ", ".join(repr(escape(c)) for c in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise CharrnnError(
            f"{text.label}: {len(bad)} character(s) not in the model's vocabulary: {shown}{more} "
            "(use --unk skip to leave them out)"
        )
    n = int(text.ids.shape[0])
    out = np.empty(n, vocab.dtype)
    kept = 0
    block = 1 << 22
    for a in range(0, n, block):
        mapped = lut[np.asarray(text.ids[a : a + block])]
        mapped = mapped[mapped >= 0]
        out[kept : kept + mapped.size] = mapped
        kept += mapped.size
    return out[:kept], n - kept


def load_models(paths: list, threads: int = 0) -> list[tuple]:
    """(path, Checkpoint, CharRNN) for each --checkpoint given (default: checkpoints/), all
    loaded and checked before any work; byte and character models cannot be mixed (their
    scores are per byte and per character)."""
    from charrnn.checkpoint import resolve_checkpoint

    resolved = [resolve_checkpoint(p) for p in paths] or [resolve_checkpoint(None)]
    models = [(path, *load_model(path, threads)) for path in resolved]
    kinds = {ckpt.vocab.kind for _, ckpt, _ in models}
    if len(kinds) > 1:
        raise UsageError(
            "byte models (--bytes) and character models score different units (bits per byte, "
            "bits per character): compare models of one kind"
        )
    return models


def load_model(path, threads: int = 0):
    """(Checkpoint, CharRNN) from a checkpoint file; refuses NaN/inf weights."""
    from charrnn.checkpoint import load_finite
    from charrnn.model import CharRNN

    ckpt = load_finite(path)
    model = CharRNN.from_params(ckpt.config, ckpt.params)
    model.set_threads(threads)
    return ckpt, model
