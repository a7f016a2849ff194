"""charrnn.step (one NumPy step), the Numba sampling kernels and charrnn.sample (generation),
checked against the shared naive reference (tests/reference.py) and naive rules written here."""

import numpy as np
import pytest
import reference as ref

from charrnn import sample as S
from charrnn.config import ModelConfig, param_shapes
from charrnn.errors import CharrnnError, UsageError
from charrnn.step import feed, prepare, step
from charrnn.vocab import Vocab

ASCII = Vocab.from_text("\n abcdefghijklmnopqrstuvwxyz.,")


def make_params(cfg: ModelConfig, seed: int = 0, scale: float = 0.4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        k: (scale * rng.standard_normal(s)).astype(np.float32) for k, s in param_shapes(cfg).items()
    }


def model(variant="lstm", layers=2, hidden=16, embed=0, vocab=ASCII, seed=0, scale=0.4, **kw):
    """A random model of a variant (a name in tests/reference.py: VARIANTS), laid out for steps;
    kw: other ModelConfig fields."""
    cfg = ModelConfig(
        **{**ref.VARIANTS[variant], **kw}, vocab_size=len(vocab), hidden=hidden, layers=layers,
        embed=embed,
    )  # fmt: skip
    params = make_params(cfg, seed, scale)
    return cfg, params, prepare(cfg, params)


def fixed_logits_model(bias: np.ndarray, cell="lstm"):
    """All weights zero, so h stays 0 and the logits are always decoder.bias."""
    vocab = Vocab(np.arange(97, 97 + bias.size))
    cfg = ModelConfig(cell=cell, vocab_size=bias.size, hidden=4, layers=1)
    params = {k: np.zeros(s, np.float32) for k, s in param_shapes(cfg).items()}
    params["decoder.bias"] = bias.astype(np.float32)
    return vocab, prepare(cfg, params)


# ------------------------------------------------------------------ naive reference (float64)


def ref_greedy(cfg, params, prime: list[int], n: int) -> list[int]:
    """The greedy chain of the shared naive reference (tests/reference.py)."""
    p = ref.params64(params)
    state = ref.zero_state(cfg, 1)
    for x in prime[:-1]:
        _, state, _ = ref.step(cfg, p, np.array([x]), state)
    out, x = [], prime[-1]
    for _ in range(n):
        logits, state, _ = ref.step(cfg, p, np.array([x]), state)
        x = int(np.argmax(logits[0]))
        out.append(x)
    return out


CASES = [
    (variant, layers, embed) for variant in ref.VARIANTS for layers in (1, 2) for embed in (0, 5)
]


# ----------------------------------------------------------------------------- charrnn.step


@pytest.mark.parametrize("variant,layers,embed", CASES)
def test_step_matches_reference(variant, layers, embed):
    cfg, params, w = model(variant, layers, hidden=12, embed=embed)
    ids = np.array([[3, 0, 7, 7, 1], [5, 5, 2, 0, 9], [1, 2, 3, 4, 5]], np.int32)  # (B, T)
    logits, st = _last_logits(w, ids, w.zero_state(3))
    want, want_state, _ = ref.run(cfg, params, ids)
    np.testing.assert_allclose(logits, want[:, -1], rtol=1e-4, atol=1e-5)
    for a, b in zip(st, want_state, strict=True):
        np.testing.assert_allclose(a, b, 1e-4, 1e-5)
    fed_logits, fed = feed(w, ids, w.zero_state(3))
    np.testing.assert_array_equal(fed_logits, logits)
    for a, b in zip(fed, st, strict=True):
        np.testing.assert_array_equal(a, b)


def _last_logits(w, ids, state):
    """Logits after the last column of ids (B, T), and the state after it."""
    for t in range(ids.shape[1]):
        logits, state = step(w, ids[:, t], state)
    return logits, state


def test_step_does_not_modify_its_input_state():
    _, _, w = model("lstm")
    state = w.zero_state(2)
    _, new = step(w, np.array([1, 2]), state)
    assert not state[0].any() and not state[1].any() and new[0].any()


def test_prepare_refuses_wrong_shapes():
    cfg, params, _ = model("gru")
    params["weight_hh_l1"] = params["weight_hh_l1"][:, :3]
    with pytest.raises(ValueError, match="weight_hh_l1"):
        prepare(cfg, params)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("variant", [v for v in ref.VARIANTS if ref.torch_twin(v)])
def test_step_matches_torch(variant):
    torch = pytest.importorskip("torch")
    cfg, params, w = model(variant, layers=2, hidden=10, embed=4)
    rnn = ref.torch_rnn(cfg)
    rnn.load_state_dict({k: torch.from_numpy(v) for k, v in params.items() if "_l" in k})
    ids = np.array([[2, 9, 4], [0, 1, 1]])
    with torch.no_grad():
        x = torch.from_numpy(params["encoder.weight"])[torch.from_numpy(ids)]
        y, _ = rnn(x)
        dec = y[:, -1] @ torch.from_numpy(params["decoder.weight"]).T
        expected = (dec + torch.from_numpy(params["decoder.bias"])).numpy()
    np.testing.assert_allclose(_last_logits(w, ids, w.zero_state(2))[0], expected, 1e-4, 1e-5)


# ------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("variant,layers,embed", [c for c in CASES if c[2] == 0 or c[1] == 2])
def test_numba_feed_matches_numpy(variant, layers, embed):
    _, _, w = model(variant, layers, hidden=13, embed=embed)
    ids = np.random.default_rng(1).integers(0, len(ASCII), (3, 20)).astype(np.int32)
    a = S.NumpyEngine(w, w.zero_state(3), ids[:, -1])
    b = S.NumbaEngine(w, w.zero_state(3), ids[:, -1])
    a.feed(ids)
    b.feed(ids)
    for x, y in zip(a.state, b.state, strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=2e-5)


SPLITS = [(*c, h, {}) for c in CASES if c[2] == 0 for h in (13, 16)] + [
    ("lstm-proj", 2, 0, 13, {"proj": 5}),  # outputs cut 3 + 2 between the parts
    ("lstm-peephole-proj", 1, 0, 16, {"proj": 7}),
]


@pytest.mark.parametrize("variant,layers,embed,hidden,kw", SPLITS)
def test_split_kernel_gives_the_same_bits_on_one_thread_and_two(variant, layers, embed, hidden, kw):
    """Two threads each running one part of every layer (barriers between them) must compute
    exactly what one thread running both parts does: feed, then sample with all options."""
    cfg, params, w = model(variant, layers, hidden=hidden, embed=embed, scale=0.15, **kw)
    rng = np.random.default_rng(4)
    ids = rng.integers(0, len(ASCII), (3, 40)).astype(np.int32)
    u = rng.random((300, 3))
    runs = []
    for threads in (1, 2):
        eng = S.NumbaEngine(w, w.zero_state(3), ids[:, -1], threads=threads)
        assert eng.threads == threads
        eng.feed(ids[:, :-1])
        fed = [s.copy() for s in eng.state]
        out = eng.run(u, S.SampleOptions(temperature=0.8, top_k=20, top_p=0.95))
        runs.append((fed, out, eng.state))
    (fed1, out1, end1), (fed2, out2, end2) = runs
    for a, b in zip(fed1 + list(end1), fed2 + list(end2), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out1, out2)
    assert len(set(out1.ravel().tolist())) > 5  # real sampling happened, not a constant
    # and what was fed is the reference's state, to float32 rounding
    for a, b in zip(fed1, ref.run(cfg, params, ids[:, :-1])[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("cell,hidden", [("lstm", 13), ("gru", 16), ("rnn", 7)])
def test_parts_hold_every_gate_column_once(cell, hidden):
    """split(w) cuts the columns of each gate by unit; putting the parts back gives w."""
    from charrnn.step import split

    _, _, w = model(cell, 2, hidden=hidden)
    parts = split(w, 2)
    g = w.table.shape[1] // hidden
    hp = parts.table.shape[2] // g
    assert hp == -(-hidden // 2)

    def join(a):  # (..., P, G*Hp) -> (..., G*H)
        a = a.reshape(*a.shape[:-2], 2, g, hp).swapaxes(-3, -2)  # (..., G, P, Hp)
        return a.reshape(*a.shape[:-3], g, 2 * hp)[..., :hidden].reshape(*a.shape[:-3], -1)

    np.testing.assert_array_equal(join(parts.table.swapaxes(0, 1)), w.table)
    np.testing.assert_array_equal(join(parts.w_hh.swapaxes(1, 2)), w.w_hh_t)
    np.testing.assert_array_equal(join(parts.w_ih.swapaxes(1, 2)), w.w_ih_t)
    np.testing.assert_array_equal(join(parts.bias), w.bias)
    if cell == "gru":
        np.testing.assert_array_equal(parts.extra[0].reshape(2, -1)[:, :hidden], w.extra["b_hn"])
    if 2 * hp > hidden:  # the padding columns are zero
        assert not parts.w_hh[:, 1, :, hp - 1 :: hp].any()


def test_barrier_orders_writes_between_two_threads():
    """Each round thread 0 writes a value and both meet; thread 1 must see it, every time."""
    import threading

    from numba import njit

    from charrnn.kernels.sync import LINE, meet, reached

    @njit(nogil=True)
    def rounds(flags, who, data, n_rounds):
        n = reached(flags, who)
        for i in range(1, n_rounds + 1):
            if who == 0:
                data[0] = i
            n = meet(flags, who, n)
            if who == 1 and data[0] != i:
                data[1] += 1
            n = meet(flags, who, n)
        return n

    flags, data = np.zeros(2 * LINE, np.int64), np.zeros(2, np.int64)
    rounds(np.zeros(2 * LINE, np.int64), -1, data.copy(), 1)  # compile first
    other = threading.Thread(target=rounds, args=(flags, 1, data, 20_000))
    other.start()
    n = rounds(flags, 0, data, 20_000)
    other.join()
    assert data[0] == 20_000 and data[1] == 0
    assert n == 40_000 and flags[0] == flags[LINE] == 40_000


def test_numba_pick_equals_numpy_pick():
    from charrnn.kernels.step import pick

    rng = np.random.default_rng(3)
    work = np.empty(12)
    for _ in range(500):
        logits = rng.integers(-3, 4, (1, 12)).astype(np.float32) * rng.choice([0.3, 1.0])
        u = rng.random(1)
        t = float(rng.choice([0.0, 0.5, 1.0, 3.0]))
        k = int(rng.choice([1, 2, 5, 12, 40]))
        p = float(rng.choice([1e-9, 0.3, 0.8, 1.0]))
        expected = S.pick(logits, u, t, k, p)[0]
        assert pick(logits[0], u[0], t, min(k, 12), p, work) == expected


# ------------------------------------------------------------------------------- sampling


def naive_pick(logits, u, temperature, top_k=None, top_p=None) -> int:
    """The documented rule, one row, with Python sorting."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64)
    p = np.exp((z - z.max()) / temperature)
    order = sorted(range(len(p)), key=lambda i: (-p[i], i))
    kept = order[: top_k or len(p)]
    if top_p is not None and top_p < 1:
        total = 0.0
        for i in kept:
            total += p[i]
        acc, n = 0.0, len(kept)
        for j, i in enumerate(kept):
            acc += p[i]
            if acc >= top_p * total:
                n = j + 1
                break
        kept = kept[:n]
    q = np.zeros_like(p)
    q[kept] = p[kept]
    x = u * q.sum()
    acc = 0.0
    for i in range(len(q)):
        acc += q[i]
        if acc > x:
            return i
    return max(kept)


def test_pick_matches_naive_rule():
    rng = np.random.default_rng(7)
    for _ in range(300):
        logits = (rng.integers(-4, 5, (5, 9)) * rng.choice([0.25, 1.0])).astype(np.float32)
        u = rng.random(5)
        t = float(rng.choice([0.0, 0.4, 1.0, 2.5]))
        k = rng.choice([None, 1, 3, 9, 20])
        p = rng.choice([None, 1e-6, 0.5, 0.9, 1.0])
        got = S.pick(logits, u, t, k, p)
        want = [naive_pick(logits[b], u[b], t, k, p) for b in range(5)]
        assert got.tolist() == want
    # exact boundary: two equal symbols, top-p 0.5 reaches its mass with the first alone
    even = np.zeros((1, 2), np.float32)
    assert S.pick(even, np.array([0.99]), 1.0, None, 0.5).tolist() == [0]
    assert S.pick(even, np.array([0.99]), 1.0, None, 0.51).tolist() == [1]


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("variant", ref.VARIANTS)
def test_greedy_equals_reference_argmax_chain(variant, engine):
    cfg, params, w = model(variant, layers=2, hidden=16, scale=0.6)
    prime = ASCII.encode("the cat")
    texts = S.sample_texts(
        w, ASCII, np.tile(prime, (2, 1)), S.SampleOptions(length=40, temperature=0, num_samples=2),
        np.random.default_rng(0), engine=engine,
    )  # fmt: skip
    want = ASCII.decode(ref_greedy(cfg, params, prime.tolist(), 40))
    assert texts == [want, want]


def _gen(w, vocab=ASCII, rng_seed=0, engine="numpy", prime="a", **kw):
    o = S.SampleOptions(**kw)
    ids = np.tile(vocab.encode(prime), (o.num_samples, 1))
    return S.sample_texts(w, vocab, ids, o, np.random.default_rng(rng_seed), engine=engine)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_same_rng_seed_same_text_other_seed_other_text(engine):
    _, _, w = model("gru", scale=0.3)
    a = _gen(w, rng_seed=5, engine=engine, length=200, num_samples=3)
    assert a == _gen(w, rng_seed=5, engine=engine, length=200, num_samples=3)
    assert a != _gen(w, rng_seed=6, engine=engine, length=200, num_samples=3)
    assert len(set(a)) == 3 and all(len(t) == 200 for t in a)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_top_k_1_and_tiny_top_p_equal_greedy(engine):
    _, _, w = model("lstm", scale=0.5)
    greedy = _gen(w, engine=engine, length=60, temperature=0)
    assert _gen(w, engine=engine, length=60, top_k=1, rng_seed=1) == greedy
    assert _gen(w, engine=engine, length=60, top_p=1e-9, temperature=1.5, rng_seed=2) == greedy


BIAS = np.array([0.0, 1.0, 2.0, -1.0, 0.5, 1.5, -3.0])


def _freqs(text: str, vocab: Vocab) -> np.ndarray:
    ids = vocab.encode(text)
    return np.bincount(ids, minlength=len(vocab)) / ids.size


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("temperature", [0.6, 1.0, 2.0])
def test_sampled_frequencies_match_softmax(engine, temperature):
    vocab, w = fixed_logits_model(BIAS)
    texts = _gen(w, vocab, 11, engine, length=400, num_samples=60, temperature=temperature)
    n = 400 * 60
    p = _softmax(BIAS / temperature)
    f = _freqs("".join(texts), vocab)
    assert np.all(np.abs(f - p) <= 4.5 * np.sqrt(p * (1 - p) / n) + 1e-12), (f, p)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_top_k_and_top_p_truncate_the_support(engine):
    vocab, w = fixed_logits_model(BIAS)
    p = _softmax(BIAS)
    order = np.argsort(-p, kind="stable")
    n = 300 * 40
    # top-k 3: exactly the three likeliest, renormalised
    f = _freqs("".join(_gen(w, vocab, 3, engine, length=300, num_samples=40, top_k=3)), vocab)
    q = np.zeros_like(p)
    q[order[:3]] = p[order[:3]] / p[order[:3]].sum()
    assert set(np.flatnonzero(f)) == set(order[:3])
    assert np.all(np.abs(f - q) <= 4.5 * np.sqrt(q * (1 - q) / n) + 1e-12)
    # top-p 0.8: the smallest likeliest prefix holding 80 %
    m = int(np.searchsorted(np.cumsum(p[order]), 0.8) + 1)
    f = _freqs("".join(_gen(w, vocab, 4, engine, length=300, num_samples=40, top_p=0.8)), vocab)
    assert set(np.flatnonzero(f)) == set(order[:m]) and 1 < m < len(p)
    # both: top-p measured within the renormalised top-k set
    f = _freqs(
        "".join(_gen(w, vocab, 5, engine, length=50, num_samples=40, top_k=2, top_p=0.7)), vocab
    )
    pk = p[order[:2]] / p[order[:2]].sum()
    want = order[:1] if pk[0] >= 0.7 else order[:2]
    assert set(np.flatnonzero(f)) == set(want)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_stop_strings_cut_the_unstopped_text(engine):
    _, _, w = model("lstm", scale=0.3)
    free = _gen(w, rng_seed=9, engine=engine, length=300, num_samples=3)
    stop = free[0][121:124]
    stopped = _gen(w, rng_seed=9, engine=engine, length=300, num_samples=3, stop=(stop, "zzzz"))
    for full, cut in zip(free, stopped, strict=True):
        ends = [i + len(s) for s in (stop, "zzzz") if (i := full.find(s)) >= 0]
        assert cut == (full[: min(ends)] if ends else full)
    assert stopped[0].endswith(stop) and len(stopped[0]) <= 124


def test_stop_string_straddling_chunks():
    # the chunk sizes are 1, 4, 16, ...: a stop string across chars 4-6 spans two chunks
    _, _, w = model("rnn", scale=0.3)
    free = _gen(w, rng_seed=2, length=50)[0]
    stop = free[3:7]
    assert _gen(w, rng_seed=2, length=50, stop=(stop,))[0] == free[: free.find(stop) + 4]


def test_pieces_stream_in_order_and_end_each_row():
    _, _, w = model("lstm")
    o = S.SampleOptions(length=30, num_samples=2)
    pieces = list(S.generate(w, ASCII, np.zeros((2, 1), np.int32), o, np.random.default_rng(0)))
    assert pieces[0].row == 0 and len(pieces[0].text) == 1  # the first character comes alone
    for r in (0, 1):
        mine = [p for p in pieces if p.row == r]
        assert mine[-1].done and not any(p.done for p in mine[:-1])
        assert len("".join(p.text for p in mine)) == 30


def test_auto_engine_switches_at_a_fixed_step(monkeypatch):
    monkeypatch.setattr(S, "NUMBA_AFTER", 40)
    monkeypatch.setattr(S, "LOADER_AFTER", 5)
    monkeypatch.setattr(S, "_numba_pays", lambda *a: True)
    _, _, w = model("gru", scale=0.5)
    a = _gen(w, rng_seed=4, engine="auto", length=300, num_samples=2)
    assert a == _gen(w, rng_seed=4, engine="auto", length=300, num_samples=2)
    b = _gen(w, rng_seed=4, engine="numpy", length=300, num_samples=2)
    assert [t[:40] for t in a] == [t[:40] for t in b]
    # greedy texts agree across the switch: both engines compute the same model
    g = _gen(w, engine="auto", length=300, temperature=0)
    assert g == _gen(w, engine="numpy", length=300, temperature=0)


def test_a_slow_kernel_load_is_announced_and_waited_for(monkeypatch):
    """At the switch the text waits for the kernel (never switching later, which would change
    the text) and says why through on_wait."""
    import time

    monkeypatch.setattr(S, "NUMBA_AFTER", 40)
    monkeypatch.setattr(S, "LOADER_AFTER", 5)
    monkeypatch.setattr(S, "_numba_pays", lambda *a: True)
    _, _, w = model("lstm", scale=0.5)
    expected = _gen(w, rng_seed=2, engine="auto", length=200)
    warm = S.warm_numba
    monkeypatch.setattr(S, "warm_numba", lambda w: (time.sleep(1.0), warm(w)))
    said = []
    o = S.SampleOptions(length=200)
    pieces = S.generate(
        w, ASCII, ASCII.encode("a")[None], o, np.random.default_rng(2), on_wait=said.append
    )
    assert ["".join(p.text for p in pieces)] == expected
    assert len(said) == 1 and "compiling" in said[0]


def test_length_zero_yields_only_done_markers():
    _, _, w = model("rnn")
    assert _gen(w, length=0, num_samples=2) == ["", ""]


@pytest.mark.parametrize(
    "kw",
    [
        {"length": -1}, {"temperature": -0.1}, {"temperature": float("nan")}, {"top_k": 0},
        {"top_p": 0.0}, {"top_p": 1.01}, {"num_samples": 0}, {"stop": ("",)},
    ],
)  # fmt: skip
def test_options_refuse_bad_values(kw):
    with pytest.raises(UsageError):
        S.SampleOptions(**kw).validate()


# --------------------------------------------------------------------------- prime and seed


def test_prime_ids_seed_start_symbol_and_unknown_characters():
    ids, starts = S.prime_ids(ASCII, "a cab", num_samples=2)
    assert ids.shape == (2, 5) and ASCII.decode(ids[1]) == "a cab" and starts == ["a cab"] * 2
    ids, starts = S.prime_ids(ASCII, None)
    assert ASCII.decode(ids[0]) == "\n" and starts == [""]
    no_newline = Vocab.from_text("xyz ")
    assert no_newline.decode(S.prime_ids(no_newline, None)[0][0]) == " "
    assert S.prime_ids(Vocab.from_text("xyz"), None)[0].tolist() == [[0]]
    with pytest.raises(CharrnnError, match="'Q'.*--unk skip"):
        S.prime_ids(ASCII, "aQb")
    ids, starts = S.prime_ids(ASCII, "aQb", unk="skip")
    assert ASCII.decode(ids[0]) == "ab" and starts == ["aQb"]
    ids, _ = S.prime_ids(ASCII, "QQ", unk="skip")  # nothing left: the start symbol
    assert ASCII.decode(ids[0]) == "\n"


def test_seed_random_draws_one_symbol_per_sample():
    ids, starts = S.prime_ids(
        ASCII, None, num_samples=50, seed_random=True, rng=np.random.default_rng(1)
    )
    assert ids.shape == (50, 1) and len(set(ids[:, 0].tolist())) > 10
    assert starts == [ASCII.decode(r) for r in ids]


def test_unicode_vocabulary_generates_its_own_characters():
    vocab = Vocab.from_text("你好世界🙂😀\n")
    _, _, w = model("lstm", vocab=vocab, scale=0.5)
    texts = _gen(w, vocab, prime="你", length=200, num_samples=2, engine="numba")
    assert all(set(t) <= set(vocab.chars) for t in texts)
    assert all(t.encode("utf-8").decode("utf-8") == t for t in texts)
    assert any("🙂" in t or "😀" in t for t in texts)


def test_check_finite():
    _, params, _ = model("rnn")
    cfg, _, w = model("rnn")
    S.check_finite(w)
    params["weight_hh_l1"][0, 0] = np.nan
    with pytest.raises(CharrnnError, match="NaN"):
        S.check_finite(prepare(cfg, params))


def test_long_seed_fed_by_the_kernel_gives_the_same_greedy_text(monkeypatch):
    _, _, w = model("lstm", scale=0.5)
    seed = "the quick brown fox jumps over the lazy dog. " * 3
    want = _gen(w, prime=seed, engine="numpy", length=50, temperature=0)
    monkeypatch.setattr(S, "FEED_NUMBA_MIN", 20)
    assert _gen(w, prime=seed, engine="auto", length=50, temperature=0) == want


def test_chunks_cover_the_length_and_respect_the_switch():
    sizes = list(S._chunks(5000, 2048))
    assert sum(sizes) == 5000 and sizes[0] == 1
    ends = np.cumsum(sizes)
    assert 2048 in ends and max(sizes[: list(ends).index(2048) + 1]) <= 256
    assert max(sizes) == 2048
    assert max(S._chunks(5000, None)) == 256 and sum(S._chunks(7, None)) == 7
