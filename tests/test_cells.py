"""Each cell against the naive NumPy reference (tests/reference.py); chunked runs equal whole
runs; initialisation and parameter validation."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref

from charrnn.config import ModelConfig, param_shapes
from charrnn.model import CharRNN


def reference(cfg: ModelConfig, p: dict, x, y, state, masks=None):
    """The shared naive reference: logits (B, T, V), final state, per-layer outputs, nll."""
    logits, final, outs = ref.run(cfg, p, x, state, masks)
    return logits, final, outs, ref.nll(logits, y)


def make(variant, layers=2, embed=0, V=6, H=5, dtype=np.float64, seed=0, dropout=0.0):
    """A random model of a variant (tests/reference.py: VARIANTS)."""
    if isinstance(variant, str):
        variant = ref.VARIANTS[variant]
    cfg = ModelConfig(
        **variant, vocab_size=V, hidden=H, layers=layers, embed=embed, dropout=dropout
    )
    return CharRNN.create(cfg, np.random.default_rng(seed), dtype=dtype)


def rand_state(model, B, rng):
    return tuple(rng.uniform(-0.8, 0.8, s.shape).astype(model.dtype) for s in model.zero_state(B))


@pytest.mark.parametrize("variant", ref.variants())
@pytest.mark.parametrize("layers,embed", [(1, 0), (2, 0), (3, 4)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_reference(variant, layers, embed, dtype):
    model = make(variant, layers, embed, dtype=dtype)
    rng = np.random.default_rng(1)
    B, T = 5, 7  # 5 rows: layers above the first take lstm/rnn.infer_stacked
    x = rng.integers(0, 6, (B, T))
    y = rng.integers(0, 6, (B, T))
    state = rand_state(model, B, rng)
    kept = tuple(s.copy() for s in state)
    logits, final, outs, nll = reference(model.config, model.params, x, y, state)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    fr = model.forward(x, state, return_hidden=True)
    assert fr.logits.shape == (B, T, 6) and fr.logits.dtype == dtype
    np.testing.assert_allclose(fr.logits, logits, rtol=0, atol=tol * 10)
    for a, b in zip(fr.state, final, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)
    for a, b in zip(fr.hidden, outs, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)
    got_nll, st = model.nll(x, y, state)
    np.testing.assert_allclose(got_nll, nll, rtol=0, atol=tol * 10)
    res = model.loss_and_grad(x, y, state)
    assert res.loss == pytest.approx(nll.mean(), abs=tol * 10)
    for a, b in zip(res.state, final, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)
    # the inference kernels (forward, nll) keep nothing for backward; they give training's bits
    # where they add in the same order (the first layer, and every layer of a cell without
    # infer_stacked); above the first layer an LSTM or RNN makes its input side step by step
    assert all(np.array_equal(a, b) for a, b in zip(st, fr.state, strict=True))
    for a, b in zip(res.state, fr.state, strict=True):
        if layers == 1 or not model.cell.stacked:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=tol)
    # the state passed in is not modified, and the returned state is fresh
    assert all(np.array_equal(a, b) for a, b in zip(state, kept, strict=True))
    assert not any(np.shares_memory(a, b) for a, b in zip(res.state, fr.state, strict=True))


@pytest.mark.parametrize("variant", ref.variants())
@pytest.mark.parametrize("output_dropout", [True, False])
def test_dropout_masks_match_reference(variant, output_dropout):
    """Masks on every layer's output (the top one before the decoder), or between layers only."""
    model = make(variant, layers=3, dropout=0.5)
    model.config.output_dropout = output_dropout
    rng = np.random.default_rng(2)
    B, T, H = 2, 4, model.config.output_size
    x, y = rng.integers(0, 6, (B, T)), rng.integers(0, 6, (B, T))
    n = 3 if output_dropout else 2
    assert model.config.dropout_masks == n
    masks = [(rng.random((B, T, H)) < 0.5) * 2.0 for _ in range(n)]
    state = rand_state(model, B, rng)
    _, final, _, nll = reference(model.config, model.params, x, y, state, masks)
    res = model.loss_and_grad(x, y, state, masks=masks)
    assert res.loss == pytest.approx(nll.mean(), abs=1e-12)
    # the top layer's mask changes the loss exactly when it is applied
    unmasked_top = reference(model.config, model.params, x, y, state, masks[:2])[3].mean()
    assert (res.loss == pytest.approx(unmasked_top, abs=1e-12)) != output_dropout
    with pytest.raises(ValueError, match=f"masks must hold {n} arrays"):
        model.loss_and_grad(x, y, state, masks=masks[:1])
    # masks drawn from an rng: deterministic for a given seed, and different from no dropout
    a = model.loss_and_grad(x, y, state, rng=np.random.default_rng(5))
    b = model.loss_and_grad(x, y, state, rng=np.random.default_rng(5))
    assert a.loss == b.loss and np.array_equal(a.grad_flat, b.grad_flat)
    plain = reference(model.config, model.params, x, y, state)[3].mean()
    assert a.loss != pytest.approx(plain, abs=1e-9)
    with pytest.raises(ValueError, match="rng"):
        model.loss_and_grad(x, y, state)


@pytest.mark.parametrize("variant", ref.variants())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunks_equal_whole(variant, dtype):
    """A sequence run in chunks with the state carried equals the same sequence run whole."""
    model = make(variant, layers=2, dtype=dtype)
    rng = np.random.default_rng(3)
    B, T = 4, 12
    x, y = rng.integers(0, 6, (B, T)), rng.integers(0, 6, (B, T))
    state = rand_state(model, B, rng)
    whole = model.forward(x, state)
    whole_loss = model.loss_and_grad(x, y, state)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    st, logits, losses = state, [], []
    for a, b in ((0, 5), (5, 6), (6, 12)):
        r = model.forward(x[:, a:b], st)
        lg = model.loss_and_grad(x[:, a:b], y[:, a:b], st)
        for s1, s2 in zip(r.state, lg.state, strict=True):  # inference vs training kernels
            np.testing.assert_allclose(s1, s2, rtol=0, atol=tol)
        logits.append(r.logits)
        losses.append(lg.loss * (b - a))
        st = r.state
    np.testing.assert_allclose(np.concatenate(logits, 1), whole.logits, rtol=0, atol=tol)
    for s1, s2 in zip(st, whole.state, strict=True):
        np.testing.assert_allclose(s1, s2, rtol=0, atol=tol)
    assert sum(losses) / T == pytest.approx(whole_loss.loss, abs=tol)


@pytest.mark.parametrize("variant", ref.variants())
def test_truncated_gradients_accumulate(variant):
    """Truncated BPTT over two chunks: the gradients of the second chunk, plus the first
    chunk's gradient with dL2/d(carried state) fed back, equal the whole-sequence gradient."""
    model = make(variant, layers=2)
    rng = np.random.default_rng(4)
    B, T, cut = 3, 8, 3
    x, y = rng.integers(0, 6, (B, T)), rng.integers(0, 6, (B, T))
    state = rand_state(model, B, rng)
    whole = model.loss_and_grad(x, y, state)
    first = model.loss_and_grad(x[:, :cut], y[:, :cut], state)
    second = model.loss_and_grad(x[:, cut:], y[:, cut:], first.state)
    # d(whole)/dθ = cut/T * dL1/dθ + (T-cut)/T * [dL2/dθ + dL2/ds · ds/dθ]; the last term is
    # what truncation drops: it is rebuilt from dstate by a finite difference of s(θ).
    eps = 1e-6
    kept = (cut * first.grad_flat + (T - cut) * second.grad_flat) / T
    # directional derivative of L2(s(θ)) along dθ = e, estimated by finite differences
    e = rng.standard_normal(model.flat.size)
    e /= np.linalg.norm(e)
    base = model.flat.copy()

    def l2_of(theta):
        model.flat[:] = theta
        s = model.loss_and_grad(x[:, :cut], y[:, :cut], state).state
        model.flat[:] = base
        return float(sum((a * b).sum() for a, b in zip(second.dstate, s, strict=True)))

    through_state = (l2_of(base + eps * e) - l2_of(base - eps * e)) / (2 * eps)
    lhs = whole.grad_flat @ e
    rhs = kept @ e + (T - cut) / T * through_state
    assert lhs == pytest.approx(rhs, rel=1e-7, abs=1e-10)
    assert whole.loss == pytest.approx((cut * first.loss + (T - cut) * second.loss) / T)


def test_initialisation_like_pytorch():
    cfg = ModelConfig(cell="lstm", vocab_size=50, hidden=64, layers=2, embed=16, forget_bias=1.0)
    model = CharRNN.create(cfg, np.random.default_rng(0))
    bound = 1 / np.sqrt(64)
    assert list(model.params) == list(param_shapes(cfg))
    for name, value in model.params.items():
        assert value.dtype == np.float32 and value.shape == param_shapes(cfg)[name]
        if name == "encoder.weight":
            assert abs(value.std() - 1) < 0.1 and abs(value.mean()) < 0.1
        elif name.startswith("bias"):
            rest = np.concatenate([value[:64], value[128:]])
            assert np.abs(rest).max() <= bound and np.abs(rest).max() > 0.8 * bound
        else:
            assert np.abs(value).max() <= bound and np.abs(value).max() > 0.9 * bound
            assert abs(value.mean()) < 0.05 * bound * 10
    for k in range(2):
        assert np.all(model.params[f"bias_ih_l{k}"][64:128] == 1.0)
        assert np.all(model.params[f"bias_hh_l{k}"][64:128] == 0.0)
    # views share the flat buffer
    model.flat[:] = 0
    assert not model.params["decoder.weight"].any()
    # same seed, same model
    a = CharRNN.create(cfg, np.random.default_rng(7))
    b = CharRNN.create(cfg, np.random.default_rng(7))
    assert np.array_equal(a.flat, b.flat)


def test_from_params_validates():
    model = make("gru", layers=2)
    cfg = model.config
    copy = CharRNN.from_params(cfg, dict(model.params), dtype=np.float64)
    assert np.array_equal(copy.flat, model.flat) and copy.flat is not model.flat
    p = dict(model.params)
    del p["bias_hh_l1"]
    with pytest.raises(ValueError, match="bias_hh_l1"):
        CharRNN.from_params(cfg, p)
    p = dict(model.params, extra=np.zeros(3))
    with pytest.raises(ValueError, match="extra"):
        CharRNN.from_params(cfg, p)
    p = dict(model.params)
    p["weight_hh_l0"] = np.zeros((3, 5))
    with pytest.raises(ValueError, match="weight_hh_l0"):
        CharRNN.from_params(cfg, p)
    p = dict(model.params)
    p["decoder.bias"] = np.full(6, np.nan)
    with pytest.raises(ValueError, match="decoder.bias"):
        CharRNN.from_params(cfg, p)


def test_input_validation():
    model = make("lstm", layers=1)
    with pytest.raises(ValueError, match="ids outside"):
        model.forward(np.array([[0, 6]]), None)
    # the range is found anywhere in any layout and integer type
    wide = np.zeros((3, 8), np.int64)
    wide[2, 6] = -1
    for bad in (np.array([[3, -1, 2]]), wide[:, ::2].T, np.array([[1, 2], [255, 0]], np.uint8)):
        with pytest.raises(ValueError, match="ids outside"):
            model.forward(bad, None)
    ok = np.array([[5, 0], [2, 5]], np.uint8)
    np.testing.assert_array_equal(model.forward(ok).logits, model.forward(ok.astype(int)).logits)
    with pytest.raises(ValueError, match="state"):
        model.forward(np.array([[0, 1]]), model.zero_state(2))
    with pytest.raises(ValueError, match="differ"):
        model.loss_and_grad(np.zeros((1, 2), int), np.zeros((1, 3), int), None)


@pytest.mark.parametrize("variant", ref.variants())
def test_inference_in_time_chunks(variant, monkeypatch):
    """forward and nll split long inputs into time chunks internally: same results."""
    import charrnn.model as model_module

    model = make(variant, layers=2)
    rng = np.random.default_rng(6)
    B, T = 3, 20
    x, y = rng.integers(0, 6, (B, T)), rng.integers(0, 6, (B, T))
    state = rand_state(model, B, rng)
    whole = model.forward(x, state, return_hidden=True)
    whole_nll, _ = model.nll(x, y, state)
    monkeypatch.setattr(model_module, "INFER_ROWS", 7)  # chunks of 2 steps for B = 3
    part = model.forward(x, state, return_hidden=True)
    part_nll, st = model.nll(x, y, state)
    np.testing.assert_allclose(part.logits, whole.logits, rtol=0, atol=1e-12)
    for a, b in zip(part.hidden, whole.hidden, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    for a, b in zip(st, whole.state, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(part_nll, whole_nll, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "cifg", "lstm-peephole-proj"])
def test_threads_deterministic_and_consistent(cell):
    """threads=1 and threads=2 (streams split into shards) are each bit-reproducible, and agree
    with each other to float32 rounding."""
    model = make(cell, layers=2, V=30, H=24, dtype=np.float32)
    rng = np.random.default_rng(7)
    B, T = 32, 9
    x, y = rng.integers(0, 30, (B, T)), rng.integers(0, 30, (B, T))
    state = rand_state(model, B, rng)
    results = {}
    for threads in (1, 2):
        model.set_threads(threads)
        a = model.loss_and_grad(x, y, state)
        b = model.loss_and_grad(x, y, state)
        assert a.loss == b.loss
        assert np.array_equal(a.grad_flat, b.grad_flat)
        assert all(np.array_equal(p, q) for p, q in zip(a.dstate, b.dstate, strict=True))
        fa, fb = model.forward(x, state), model.forward(x, state)
        assert np.array_equal(fa.logits, fb.logits)
        results[threads] = a
    one, two = results[1], results[2]
    assert two.loss == pytest.approx(one.loss, rel=1e-6)
    scale = np.abs(one.grad_flat).max()
    assert np.abs(two.grad_flat - one.grad_flat).max() <= 1e-5 * scale
    for p, q in zip(one.state, two.state, strict=True):
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-6)
    model.set_threads(1)


def test_copy_has_the_same_weights_in_buffers_of_its_own():
    cfg = ModelConfig(cell="gru", vocab_size=7, hidden=5, layers=2)
    model = CharRNN.create(cfg, np.random.default_rng(0))
    twin = model.copy(threads=1)
    assert twin.threads == 1 and twin.config == model.config
    np.testing.assert_array_equal(twin.flat, model.flat)
    x = np.array([[1, 2, 3, 4]])
    np.testing.assert_array_equal(twin.nll(x, x)[0], model.nll(x, x)[0])
    twin.flat[:] = 0.0
    assert np.abs(model.flat).sum() > 0  # the original is untouched


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_frozen_copy_derives_its_weights_once_and_scores_the_same(cell, monkeypatch):
    from charrnn.cells import base

    model = make(cell, layers=2, V=6, H=5, dtype=np.float32)
    frozen = model.copy(threads=1, frozen=True)
    calls = []
    real = base.packed
    monkeypatch.setattr(base, "packed", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(3)
    for T in (2, 9, 9):  # 2 rows read weight_ih_l0's columns; 9 rows use the one-hot table
        x, y = rng.integers(0, 6, (1, T)), rng.integers(0, 6, (1, T))
        np.testing.assert_array_equal(frozen.nll(x, y)[0], model.nll(x, y)[0])
    # the unfrozen model packs weight_hh^T per layer (and, LSTM and RNN, the second layer's
    # [weight_ih | weight_hh]^T) on every call; the frozen one once per kind
    per_call = 2 + (cell != "gru")
    assert len(calls) == 3 * per_call + 2 * per_call


def test_frozen_copies_of_a_frozen_model_share_its_weights_and_derived_weights(monkeypatch):
    from charrnn.cells import base

    model = make("lstm", layers=2, V=6, H=5, dtype=np.float32)
    frozen = model.copy(threads=1, frozen=True)
    assert not np.shares_memory(frozen.flat, model.flat)  # the caller's model may go on training
    a, b = frozen.copy(threads=1, frozen=True), frozen.copy(threads=1, frozen=True)
    assert np.shares_memory(a.flat, frozen.flat) and np.shares_memory(b.flat, frozen.flat)
    calls = []
    real = base.packed
    monkeypatch.setattr(base, "packed", lambda *x, **k: calls.append(1) or real(*x, **k))
    x = np.random.default_rng(4).integers(0, 6, (1, 12))
    np.testing.assert_array_equal(a.nll(x, x)[0], model.nll(x, x)[0])
    n = len(calls)
    np.testing.assert_array_equal(b.nll(x, x)[0], a.nll(x, x)[0])
    assert len(calls) == n  # b used what a derived
    unfrozen = frozen.copy(threads=1)
    assert not np.shares_memory(unfrozen.flat, frozen.flat)


@pytest.mark.parametrize("cell,block", [("lstm", 1), ("cifg", 0)])
def test_forget_bias_sets_the_forget_gate_of_each_layer(cell, block):
    cfg = ModelConfig(cell=cell, vocab_size=7, hidden=4, layers=2, forget_bias=1.5)
    model = CharRNN.create(cfg, np.random.default_rng(0))
    for k in range(2):
        b_ih, b_hh = model.params[f"bias_ih_l{k}"], model.params[f"bias_hh_l{k}"]
        gate = slice(4 * block, 4 * block + 4)
        assert np.all(b_ih[gate] == 1.5) and np.all(b_hh[gate] == 0.0)
        assert np.abs(np.delete(b_ih, np.r_[gate])).max() <= 0.5  # the others as initialised
