"""The split scoring pass (charrnn/splitpass.py, kernels/parts.py): every layer's units cut
between two threads, each unit's arithmetic the one-core pass's; the pair of threads that runs
it (charrnn/partner.py); the register-tiled product under both (kernels/tiles.py)."""

import numpy as np
import pytest
import reference as ref

from charrnn.config import ModelConfig
from charrnn.kernels.sync import LINE
from charrnn.model import CharRNN
from charrnn.partner import Pair
from charrnn.splitpass import SplitPass


def _model(variant: dict, hidden: int, layers: int, seed: int = 0, **extra) -> CharRNN:
    cfg = ModelConfig(vocab_size=11, hidden=hidden, layers=layers, **{**variant, **extra})
    return CharRNN.create(cfg, np.random.default_rng(seed))


def _case(model: CharRNN, batch: int, steps: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    v = model.config.vocab_size
    x, y = rng.integers(0, v, (batch, steps)), rng.integers(0, v, (batch, steps))
    state = tuple(0.5 * rng.standard_normal(s.shape).astype(np.float32)
                  for s in model.zero_state(batch))  # fmt: skip
    return x, y, state


@pytest.mark.parametrize("variant", ref.variants())
@pytest.mark.parametrize("hidden", [7, 8])  # 7: the second part has a padded unit
def test_the_split_pass_gives_the_one_core_pass(variant, hidden):
    """Below 4 rows CharRNN.nll runs the same products (a GEMM for the input side, the tiled
    product in the time loop) and the same gate math, on one thread or two, across calls (the
    state carried) and for several rows. Not bit for bit on every host: OpenBLAS may round a
    row of a 60-row product differently from the same row of a 150-row one (seen on Zen 1)."""
    model = _model(variant, hidden, layers=2)
    for batch in (1, 3):
        x, y, state = _case(model, batch, 150)
        want, want_state = model.nll(x, y, state)
        for threads in (1, 2):
            sp = SplitPass(model, threads)
            a, mid = sp.nll(x[:, :60], y[:, :60], state)
            b, end = sp.nll(x[:, 60:], y[:, 60:], mid)
            np.testing.assert_allclose(np.concatenate([a, b], axis=1), want, rtol=1e-6, atol=0)
            for got, exp in zip(end, want_state, strict=True):
                assert got.shape == exp.shape
                np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ref.variants("lstm", "gru", "rnn", "cifg", "lstm-proj"))
def test_the_split_pass_agrees_with_the_reference_for_many_rows_and_an_embedding(variant):
    """From 4 rows on CharRNN.nll makes a layer's input side step by step: rounding differs,
    the figures agree. The float64 reference checks both."""
    model = _model(variant, 9, layers=3, embed=4)
    x, y, _ = _case(model, 6, 40)
    got, state = SplitPass(model, 2).nll(x, y, model.zero_state(6))
    logits, final, _ = ref.run(model.config, model.params, x)
    np.testing.assert_allclose(got, ref.nll(logits, y), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state[0], final[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, model.nll(x, y)[0], rtol=1e-5, atol=1e-6)


def test_a_pair_whose_partner_keeps_it_waiting_runs_alone_then_tries_again():
    """The barrier counts the times a thread gave its core away; a call with many of them sends
    the next calls to this thread alone (twice as many after each failed try), and a good
    call of the pair resets that."""
    calls = []

    def kernel(arg, lo, hi, flags, who):
        calls.append((lo, hi, who))
        if who == 0 and arg == "busy":
            flags[1] += 100  # as if thread 0 had yielded its core 100 times
        elif who == 1 and arg == "busy":
            flags[LINE + 1] += 1

    pair = Pair(threads=2)
    pair.run(kernel, ("quiet",), 2, 1024)
    assert sorted(calls) == [(0, 1, 0), (1, 2, 1)] and pair.alone == 0
    calls.clear()
    pair.run(kernel, ("busy",), 2, 1024)
    assert pair.alone == Pair.ALONE_CALLS
    calls.clear()
    for _ in range(Pair.ALONE_CALLS):
        pair.run(kernel, ("busy",), 2, 1024)
    assert calls == [(0, 2, -1)] * Pair.ALONE_CALLS  # every part on this thread, no partner
    calls.clear()
    pair.run(kernel, ("busy",), 2, 1024)  # the pair tries again, and fails again
    assert len(calls) == 2 and pair.alone == 2 * Pair.ALONE_CALLS
    pair.alone = 0
    pair.run(kernel, ("quiet",), 2, 1024)
    assert pair.backoff == Pair.ALONE_CALLS  # a good call resets the back-off
    assert Pair(threads=1).threads == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_tiled_product_is_a_matrix_product(dtype):
    """mm_packed over the row counts of every tile shape, full and partial panels, beta 0 and
    1, and rows with a stride (a slice of a wider array)."""
    from charrnn.cells.base import packed
    from charrnn.kernels.tiles import mm_packed, panel_width

    rng = np.random.default_rng(0)
    pw = panel_width(dtype)
    for m in (1, 2, 3, 4, 5, 6, 7, 13, 25):
        for n in (3, pw, 2 * pw + 5, 5 * pw):
            k = 17
            a = rng.standard_normal((m, k + 3)).astype(dtype)[:, :k]
            b = rng.standard_normal((k, n)).astype(dtype)
            c = rng.standard_normal((m, n + 2)).astype(dtype)
            want = a.astype(np.float64) @ b + c[:, :n]
            mm_packed(a, packed(b), c[:, :n], 1)
            np.testing.assert_allclose(c[:, :n], want, rtol=1e-4, atol=1e-4)
            mm_packed(a, packed(np.ascontiguousarray(b.T), transposed=True), c[:, :n], 0)
            np.testing.assert_allclose(c[:, :n], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
