"""Scoring a text with a model: one stateful pass, mean nats, bits per character, perplexity.

What is scored. For a text of N characters c_1..c_N, the model starts from the zero state and
reads the text once, in order; character c_{t+1} is scored by -log p(c_{t+1} | c_1..c_t) for
t = 1..N-1. So N - 1 characters are scored (the first one is only context: a model has no
distribution for it before it has read anything), exactly as training scores its validation
split. The hidden state is carried from the first character to the last; the text is cut into
chunks of `chunk` steps only to bound memory, which does not change the result.

How fast. At batch 1 the recurrence is a chain of mat-vecs, one step after the other. With two
or more threads and a model of two or more stages (layers, plus the decoder), the chain is cut
into a pipeline: stage s runs its layers over chunk c while stage s+1 runs the layers above over
chunk c-1, one thread each. Every stage does exactly what a single pass does, so the result is
the same; only the order in time differs. With one thread, chunks go through `CharRNN.nll`.

Exact batch-1 scoring reads every recurrent weight matrix once per character, so it is bound by
memory bandwidth, not arithmetic. `streams=S > 1` is an opt-in approximation that trades that
for a batch: the N - 1 predictions are cut into S contiguous segments scored side by side as a
batch of S (one weight read serves S characters). Each segment but the first starts from the
zero state `burn_in` characters before its first scored character and reads them unscored, so
every character is still predicted from at least `burn_in` characters of context (all of them
in the first segment). The result differs from the exact pass only by what the state of a
segment remembers from before its burn-in; `Score.exact` says which one was run.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.config import gates
from charrnn.cpus import cpu_count
from charrnn.errors import CharrnnError, CheckpointError, CorpusError, UsageError
from charrnn.vocab import Vocab, escape

LN2 = math.log(2.0)
DEFAULT_CHUNK = 2048  # T: steps per chunk
DEFAULT_BURN_IN = 1000  # characters each segment reads unscored with streams > 1


# --------------------------------------------------------------------------------- results


@dataclass
class Score:
    """The result of scoring one text with one model."""

    chars: int  # characters scored (N - 1 for a text of N)
    total_nats: float  # sum of -log p over the scored characters
    seconds: float = 0.0
    surprisal: np.ndarray | None = None  # (N-1,) float64 nats per scored character, if kept
    streams: int = 1  # 1: the exact single pass; S > 1: S segments with a burn-in each
    burn_in: int = 0

    @property
    def exact(self) -> bool:
        return self.streams == 1

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
    streams: int = 1,
    burn_in: int = DEFAULT_BURN_IN,
) -> Score:
    """Score ids (N,) (model vocabulary, any integer dtype, a memmap is fine) in one stateful pass.

    chunk: steps T per model call; threads: 0 = all cores, 1 = a plain pass through model.nll;
    keep: keep every character's surprisal; progress(k) is called with the characters scored so
    far after each chunk. streams > 1: the approximate segmented pass (see the module doc), with
    fewer segments when the text is short (each at least burn_in characters long).
    """
    if chunk < 1:
        raise UsageError(f"chunk must be at least 1, got {chunk}")
    if threads < 0:
        raise UsageError(f"threads must be 0 (all cores) or positive, got {threads}")
    if streams < 1 or burn_in < 0:
        raise UsageError(
            f"streams must be at least 1 and burn-in 0 or more, got {streams}, {burn_in}"
        )
    n = int(ids.shape[0])
    if n < 2:
        raise CharrnnError(
            f"the text has {n} character(s): scoring needs at least 2 (the first is context)"
        )
    threads = threads or cpu_count()
    surprisal = np.empty(n - 1, np.float64) if keep else None
    streams = max(1, min(streams, (n - 1) // max(burn_in, 1)))
    t0 = time.perf_counter()
    stages = min(threads, model.config.layers + 1)
    if streams > 1:
        total = _segmented_pass(model, ids, chunk, streams, burn_in, threads, surprisal, progress)
    elif stages > 1:
        total = _Pipeline(model, chunk, stages).run(ids, surprisal, progress)
    else:
        total = _plain_pass(model, ids, chunk, surprisal, progress)
    return Score(
        n - 1, total, time.perf_counter() - t0, surprisal, streams, burn_in if streams > 1 else 0
    )


def _segmented_pass(model, ids, chunk, S, burn_in, threads, surprisal, progress) -> float:
    """Predictions 1..N-1 (prediction j: ids[j] from ids[:j]) cut into S segments [a_s, b_s),
    each run from j = max(1, a_s - burn_in) as one row of a batch; rows are padded at the end to
    the longest, and only the predictions in [a_s, b_s) are counted."""
    n = int(ids.shape[0])
    bounds = [1 + s * (n - 1) // S for s in range(S + 1)]  # a_s = bounds[s], b_s = bounds[s+1]
    first = [max(1, a - burn_in) for a in bounds[:-1]]  # q_s: first prediction run
    length = max(b - q for q, b in zip(first, bounds[1:], strict=True))  # steps per row
    model.set_threads(threads)
    state = model.zero_state(S)
    total = 0.0
    done = 0
    for t0 in range(0, length, chunk):
        t = min(chunk, length - t0)
        j = np.array(first)[:, None] + t0 + np.arange(t)[None, :]  # (S, t) prediction indices
        valid = j < np.array(bounds[1:])[:, None]  # (S, t) inside the row's run
        jc = np.where(valid, j, 1)  # padding: any valid index, not counted
        x = np.asarray(ids[jc - 1], dtype=np.int32)
        y = np.asarray(ids[jc], dtype=np.int32)
        nll, state = model.nll(x, y, state)  # (S, t)
        counted = valid & (j >= np.array(bounds[:-1])[:, None])  # (S, t) scored predictions
        total += float(nll[counted].sum())
        done += int(counted.sum())
        if surprisal is not None:
            surprisal[j[counted] - 1] = nll[counted]
        if progress is not None:
            progress(done)
    return total


def _chunk_ids(ids: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """x = ids[start:stop], y = ids[start+1:stop+1] as contiguous (t,) intp."""
    x = np.ascontiguousarray(ids[start:stop], dtype=np.intp)
    y = np.ascontiguousarray(ids[start + 1 : stop + 1], dtype=np.intp)
    return x, y


def _plain_pass(model, ids, chunk, surprisal, progress) -> float:
    n = int(ids.shape[0])
    state = model.zero_state(1)
    total = 0.0
    for start in range(0, n - 1, chunk):
        stop = min(start + chunk, n - 1)
        x, y = _chunk_ids(ids, start, stop)
        nll, state = model.nll(x[None], y[None], state)  # (1, t)
        total += float(nll.sum())
        if surprisal is not None:
            surprisal[start:stop] = nll[0]
        if progress is not None:
            progress(stop)
    return total


class _Pipeline:
    """Exact batch-1 scoring with the model cut into stages that run concurrently.

    Units are the layers 0..L-1 and the decoder; each unit projects its input (a row gather of
    the ids for layer 0, one GEMM over the chunk for the others) and then runs its recurrence
    (layers) or its softmax (decoder). A stage is a run of consecutive units. Every layer's
    outputs hs (T+1, 1, H) are double-buffered by chunk parity, so stage s+1 reads chunk c's
    outputs while stage s writes chunk c+1's. The recurrent state lives in `h`/`c` (1, H) per
    layer and is copied into hs[0] / cs[0] at the start of each chunk.
    """

    def __init__(self, model, chunk: int, stages: int) -> None:
        cfg = model.config
        p = model.params
        dt = model.dtype
        L, H, V = cfg.layers, cfg.hidden, cfg.vocab_size
        G = gates(cfg.cell) * H
        T = chunk
        self.cfg, self.p, self.T = cfg, p, chunk
        # the model's own per-call weight layout (transposed/packed W_hh, summed biases, GRU b_hn,
        # the one-hot table): the kernels are called here exactly as CharRNN._forward_shard does
        prep = model._prepare(max(chunk, V))  # rows >= V: the one-hot table is built
        self.whh_t, self.bias, self.bhn, self.table = prep.whh_t, prep.bias, prep.bhn, prep.table
        e = np.empty
        self.xg = [e((T, 1, G), dt) for _ in range(L)]
        self.hs = [[e((T + 1, 1, H), dt) for _ in range(2)] for _ in range(L)]  # by parity
        self.h = [np.zeros((1, H), dt) for _ in range(L)]
        self.c = [np.zeros((1, H), dt) for _ in range(L)]
        self.cs = [e((T + 1, 1, H), dt) for _ in range(L)] if cfg.cell == "lstm" else None
        self.tcs = [e((T, 1, H), dt) for _ in range(L)] if cfg.cell == "lstm" else None
        self.hn = [e((T, 1, H), dt) for _ in range(L)] if cfg.cell == "gru" else None
        self.hg = [e((1, G), dt) for _ in range(L)] if cfg.cell == "gru" else None
        self.emb = e((T, cfg.embed), dt) if cfg.embed else None
        self.logits = e((T, V), dt)
        self.rows = e(T, np.float64)
        self.stages = _partition(_unit_costs(cfg), stages)

    # -- one unit over one chunk

    def _layer(self, k: int, par: int, x: np.ndarray) -> None:
        from charrnn.kernels import gru as gru_k
        from charrnn.kernels import layers as lk
        from charrnn.kernels import lstm as lstm_k
        from charrnn.kernels import rnn as rnn_k

        cfg, p = self.cfg, self.p
        t = x.shape[0]
        xg = self.xg[k][:t]
        xg2 = xg.reshape(t, -1)
        if k == 0 and cfg.embed:
            lk.gather_rows(p["encoder.weight"], x, self.emb[:t])
            lk.project(self.emb[:t], p["weight_ih_l0"], self.bias[0], xg2)
        elif k == 0 and self.table is None:
            lk.gather_columns(p["weight_ih_l0"], self.bias[0], x, xg2)
        elif k == 0:
            lk.gather_rows(self.table, x, xg2)
        else:
            below = self.hs[k - 1][par][1 : t + 1].reshape(t, -1)
            lk.project(below, p[f"weight_ih_l{k}"], self.bias[k], xg2)
        hs = self.hs[k][par][: t + 1]
        hs[0] = self.h[k]
        if cfg.cell == "lstm":
            cs = self.cs[k][: t + 1]
            cs[0] = self.c[k]
            lstm_k.forward(xg, self.whh_t[k], hs, cs, self.tcs[k][:t])
            self.c[k][...] = cs[t]
        elif cfg.cell == "gru":
            gru_k.forward(xg, self.whh_t[k], self.bhn[k], hs, self.hn[k][:t], self.hg[k])
        else:
            rnn_k.forward(xg, self.whh_t[k], hs, cfg.nonlinearity == "relu")
        self.h[k][...] = hs[t]

    def _decoder(self, par: int, y: np.ndarray) -> np.ndarray:
        from charrnn.kernels import layers as lk
        from charrnn.kernels import loss as loss_k

        t = y.shape[0]
        top = self.hs[self.cfg.layers - 1][par][1 : t + 1].reshape(t, -1)
        lk.project(top, self.p["decoder.weight"], self.p["decoder.bias"], self.logits[:t])
        loss_k.xent_rows(self.logits[:t], y, self.rows[:t])
        return self.rows[:t]

    def _stage(self, s: int, c: int, ids: np.ndarray, n: int):
        """Run stage s over chunk c; the decoder stage returns the chunk's nats (t,)."""
        start = c * self.T
        stop = min(start + self.T, n - 1)
        x, y = _chunk_ids(ids, start, stop)
        out = None
        for u in self.stages[s]:
            if u < self.cfg.layers:
                self._layer(u, c % 2, x)
            else:
                out = self._decoder(c % 2, y)
        return out

    def run(self, ids, surprisal, progress) -> float:
        from threadpoolctl import threadpool_limits

        n = int(ids.shape[0])
        K = -(-(n - 1) // self.T)  # chunks
        P = len(self.stages)
        total = 0.0
        with (
            threadpool_limits(limits=1, user_api="blas"),
            ThreadPoolExecutor(max_workers=P - 1, thread_name_prefix="eval") as pool,
        ):
            for tick in range(K + P - 1):
                # stage s works on chunk tick - s; the last stage runs here, the others in the pool
                futures = [
                    pool.submit(self._stage, s, tick - s, ids, n)
                    for s in range(P - 1)
                    if 0 <= tick - s < K
                ]
                c = tick - (P - 1)
                rows = self._stage(P - 1, c, ids, n) if 0 <= c < K else None
                for f in futures:
                    f.result()
                if rows is not None:
                    total += float(rows.sum())
                    start = c * self.T
                    if surprisal is not None:
                        surprisal[start : start + rows.shape[0]] = rows
                    if progress is not None:
                        progress(start + rows.shape[0])
        return total


def _unit_costs(cfg) -> list[float]:
    """Rough time per character of each unit: layers 0..L-1, then the decoder.

    A recurrent mat-vec (G*H*H multiply-adds) counts 1 per multiply-add; a GEMM over a chunk
    runs about 4 times faster per multiply-add; the softmax costs a few multiply-adds per symbol.
    """
    G, H, V = gates(cfg.cell) * cfg.hidden, cfg.hidden, cfg.vocab_size
    costs = []
    for k in range(cfg.layers):
        proj = G * cfg.embed if (k == 0 and cfg.embed) else (0 if k == 0 else G * H)
        costs.append(G * H + proj / 4)
    costs.append(V * H / 4 + 8 * V)
    return costs


def _partition(costs: list[float], stages: int) -> list[list[int]]:
    """Cut units 0..U-1 into `stages` runs of consecutive units with the smallest largest cost."""
    U = len(costs)
    stages = max(1, min(stages, U))
    best, best_cuts = math.inf, ()
    for cuts in itertools.combinations(range(1, U), stages - 1):
        bounds = (0, *cuts, U)
        worst = max(sum(costs[a:b]) for a, b in itertools.pairwise(bounds))
        if worst < best:
            best, best_cuts = worst, cuts
    bounds = (0, *best_cuts, U)
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds)]


# --------------------------------------------------------------------------------- texts


@dataclass
class Text:
    """A text to score, as ids in some vocabulary (usually a memory-mapped corpus)."""

    label: str  # how tables name it: the file, "<stdin>", or "test split of NAME"
    ids: np.ndarray  # (N,) ids in `vocab`
    vocab: Vocab
    split: str | None = None  # "test" when it is a checkpoint's own test split
    corpus: dict[str, Any] | None = None  # fingerprint of the file(s) it came from


def read_text(source: str) -> Text:
    """A text file (or "-" for stdin), read like a training corpus (UTF-8, BOM dropped)."""
    from charrnn.data import load_corpus

    corpus = load_corpus([source])
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
    missing = [s for s in sources if not Path(s).is_file()]
    if missing:
        raise CorpusError(
            f"{where} was trained on {', '.join(sources)}; {missing[0]} is not found: put it "
            "back to score the test split, or give a text (charrnn eval FILE)"
        )
    try:
        cfg = TrainConfig.from_dict(meta["train_config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where} has a damaged train_config ({e})") from None
    corpus = load_corpus(
        sources, encoding=fp.get("encoding", "utf-8"), errors=fp.get("errors", "strict")
    )
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
    label = f"test split of {corpus.name}"
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


def nonfinite_error(path, names: list[str]) -> CheckpointError:
    return CheckpointError(
        f"{path} holds NaN or infinite weights (in {', '.join(names[:3])}): the run diverged; "
        "use an earlier checkpoint"
    )


def load_model(path, threads: int = 0):
    """(Checkpoint, CharRNN) from a checkpoint file; refuses NaN/inf weights."""
    from charrnn.checkpoint import load
    from charrnn.model import CharRNN

    ckpt = load(path)
    bad = ckpt.has_nonfinite()
    if bad:
        raise nonfinite_error(path, bad)
    model = CharRNN.from_params(ckpt.config, ckpt.params)
    model.set_threads(threads)
    return ckpt, model
