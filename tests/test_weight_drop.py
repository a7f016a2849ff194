"""Weight drop (DropConnect on W_hh, config.weight_drop): a step with masks m runs the model whose
W_hh is W_hh * m, and W_hh's gradient is that model's times m; float64 finite differences with
fixed masks; masks drawn from the rng; the option through the CLI, stored and changeable on
resume; the PyTorch peer's weight drop gives our loss and gradients with our masks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import reference as ref
from cli_asserts import one_line_error
from typer.testing import CliRunner

from charrnn.cli import app
from charrnn.config import ModelConfig
from charrnn.model import CharRNN


def model_of(variant: str, layers=2, H=5, V=6, dtype=np.float64, weight_drop=0.3, seed=0):
    cfg = ModelConfig(
        **ref.VARIANTS[variant], vocab_size=V, hidden=H, layers=layers, weight_drop=weight_drop
    )
    return CharRNN.create(cfg, np.random.default_rng(seed), dtype=dtype)


def masks_for(model, rng, keep=0.6):
    out = []
    for k in range(model.config.layers):
        shape = model.params[f"weight_hh_l{k}"].shape
        m = ((rng.random(shape) < keep) / keep).astype(model.dtype)
        m.flat[0] = 0.0  # at least one dropped weight in every mask
        out.append(m)
    return out


@pytest.mark.parametrize("variant", list(ref.VARIANTS))
@pytest.mark.parametrize("B,threads", [(1, 1), (3, 1), (16, 2)])
def test_step_runs_the_masked_weights(variant, B, threads):
    """Loss, state and every gradient but W_hh's equal those of the model with W_hh * m; W_hh's
    gradient is that model's times m (at batch 1 W_hh is read in place, at 16 rows in shards)."""
    model = model_of(variant)
    model.set_threads(threads)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 6, (B, 4)), rng.integers(0, 6, (B, 4))
    wm = masks_for(model, rng)
    res = model.loss_and_grad(x, y, weight_masks=wm)
    plain = CharRNN.from_params(
        dataclasses.replace(model.config, weight_drop=0.0), model.params, model.dtype
    )
    for k, m in enumerate(wm):
        plain.params[f"weight_hh_l{k}"] *= m
    plain.set_threads(threads)
    want = plain.loss_and_grad(x, y)
    assert res.loss == pytest.approx(want.loss, rel=1e-12)
    for a, b in zip(res.state, want.state, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for name, g in res.grads.items():
        expected = want.grads[name]
        if name.startswith("weight_hh_l"):
            expected = expected * wm[int(name[len("weight_hh_l") :])]
            assert np.any(expected != want.grads[name])  # the mask did something
        np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-14, err_msg=name)
    # the model's own weights are untouched
    assert np.array_equal(model.flat, model_of(variant).flat)


@pytest.mark.parametrize("variant", [v for v in ref.VARIANTS if v != "rnn-relu"])
def test_weight_drop_gradients_match_finite_differences(variant):
    EPS = 1e-6
    model = model_of(variant, H=3, V=4, seed=7)
    rng = np.random.default_rng(3)
    model.flat[:] = rng.uniform(-0.9, 0.9, model.flat.size)
    B, T = 2, 3
    x, y = rng.integers(0, 4, (B, T)), rng.integers(0, 4, (B, T))
    wm = masks_for(model, rng)
    res = model.loss_and_grad(x, y, weight_masks=wm)
    bad = []
    for name, p in model.params.items():
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + EPS
            up = model.loss_and_grad(x, y, weight_masks=wm).loss
            p[idx] = old - EPS
            down = model.loss_and_grad(x, y, weight_masks=wm).loss
            p[idx] = old
            num = (up - down) / (2 * EPS)
            if abs(res.grads[name][idx] - num) > 1e-5 * max(abs(num), 1e-4):
                bad.append((name, idx, res.grads[name][idx], num))
    assert not bad, bad[:5]
    # a dropped weight gets no gradient, a kept one does
    g = res.grads["weight_hh_l0"]
    assert g.flat[0] == 0.0 and np.abs(g[wm[0] > 0]).max() > 1e-6


def test_masks_from_the_rng_and_validation():
    model = model_of("lstm", dtype=np.float32, weight_drop=0.5)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, (3, 5)), rng.integers(0, 6, (3, 5))
    a = model.loss_and_grad(x, y, rng=np.random.default_rng(4))
    b = model.loss_and_grad(x, y, rng=np.random.default_rng(4))
    c = model.loss_and_grad(x, y, rng=np.random.default_rng(5))
    assert a.loss == b.loss and np.array_equal(a.grad_flat, b.grad_flat)
    assert a.loss != c.loss
    # about half of W_hh's gradient entries are dropped (exactly zero) in a drawn step
    zero = np.mean(a.grads["weight_hh_l1"] == 0)
    assert 0.4 < zero < 0.6
    with pytest.raises(ValueError, match="weight_drop > 0 needs rng"):
        model.loss_and_grad(x, y)
    with pytest.raises(ValueError, match="weight_masks must hold 2"):
        model.loss_and_grad(x, y, weight_masks=[np.ones((20, 5))])
    with pytest.raises(ValueError, match="weight mask 1 has shape"):
        model.loss_and_grad(x, y, weight_masks=[np.ones((20, 5)), np.ones((5, 20))])
    # without weight drop a step draws nothing from the rng, and inference ignores it
    off = model_of("lstm", dtype=np.float32, weight_drop=0.0)
    r = np.random.default_rng(9)
    before = r.bit_generator.state
    off.loss_and_grad(x, y, rng=r)
    assert r.bit_generator.state == before
    plain = model_of("lstm", dtype=np.float32, weight_drop=0.0)
    np.testing.assert_array_equal(model.forward(x).logits, plain.forward(x).logits)
    with pytest.raises(Exception, match="weight_drop must be in"):
        ModelConfig(vocab_size=5, weight_drop=1.0).validate()


def test_torch_peer_weight_drop_matches_ours():
    """benchmarks/peers/torch_lstm.py drops W_hh through functional_call: with our masks in
    place of its dropout, its loss and gradients are ours."""
    torch = pytest.importorskip("torch")
    V, H, B, T = 7, 6, 3, 5
    model = model_of("lstm", H=H, V=V, weight_drop=0.4, dtype=np.float64)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    wm = masks_for(model, rng)
    res = model.loss_and_grad(x, y, weight_masks=wm)
    lstm = torch.nn.LSTM(V, H, 2, batch_first=True).double()
    dec = torch.nn.Linear(H, V).double()
    for name, value in model.params.items():
        target = dec if name.startswith("decoder") else lstm
        getattr(target, name.removeprefix("decoder.")).data = torch.from_numpy(value.copy())
    dropped = {
        f"weight_hh_l{k}": getattr(lstm, f"weight_hh_l{k}") * torch.from_numpy(wm[k])
        for k in range(2)
    }
    inp = torch.nn.functional.one_hot(torch.from_numpy(x), V).double()
    out, _ = torch.func.functional_call(lstm, dropped, (inp, None))
    loss = torch.nn.functional.cross_entropy(
        dec(out).reshape(-1, V), torch.from_numpy(y).reshape(-1)
    )
    loss.backward()
    assert res.loss == pytest.approx(loss.item(), rel=1e-12)
    for name in model.params:
        t = (
            getattr(dec, name.removeprefix("decoder."))
            if "decoder" in name
            else getattr(lstm, name)
        )
        np.testing.assert_allclose(res.grads[name], t.grad.numpy(), rtol=1e-9, atol=1e-12)


TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind.\n" * 20
TINY = ["--hidden", "8", "--layers", "2", "--batch", "4", "--seq", "8", "--threads", "1"]


def test_cli_weight_drop_is_stored_shown_and_can_change_on_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "ck"

    def train(*args):
        return CliRunner().invoke(app, ["train", str(corpus), *TINY, "--out", str(out), *args])

    one_line_error(train("--steps", "5", "--weight-drop", "1.5"), 2)
    r = train("--steps", "10", "--weight-drop", "0.25", "--quiet")
    assert r.exit_code == 0, r.stderr
    from charrnn.checkpoint import load

    latest = out / "c-latest.npz"
    assert load(latest).config.weight_drop == 0.25
    shown = CliRunner().invoke(app, ["inspect", str(latest)])
    assert "weight drop 0.25" in shown.stdout
    r = train("--steps", "20", "--resume", str(latest), "--weight-drop", "0.1", "--quiet")
    assert r.exit_code == 0, r.stderr
    ck = load(latest)
    assert ck.config.weight_drop == 0.1 and ck.meta["step"] == 20
