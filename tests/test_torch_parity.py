"""Loss and every gradient equal PyTorch's for the same weights (float32), and a trained model's
parameters load into torch.nn.* unchanged. Skipped without torch.

Comparison, per tensor: max|ours - torch| <= 1e-5 * max|torch| + 1e-8 (relative to the
tensor's largest entry, since single entries near zero carry only rounding noise).
"""

from __future__ import annotations

import numpy as np
import pytest
import reference

from charrnn.config import ModelConfig
from charrnn.model import CharRNN

torch = pytest.importorskip("torch")


class TorchModel(torch.nn.Module):
    """The PyTorch equivalent: [Embedding] -> RNN/LSTM/GRU(batch_first) -> Linear."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.embed:
            self.encoder = torch.nn.Embedding(cfg.vocab_size, cfg.embed)
        self.rnn = reference.torch_rnn(cfg)
        self.decoder = torch.nn.Linear(cfg.output_size, cfg.vocab_size)

    def forward(self, x, state):
        if self.cfg.embed:
            inp = self.encoder(x)
        else:
            inp = torch.nn.functional.one_hot(x, self.cfg.vocab_size).float()
        out, new = self.rnn(inp, state if len(state) > 1 else state[0])
        return self.decoder(out), new

    def load_ours(self, params: dict):
        sd = {}
        for name, value in params.items():
            key = name if name.startswith(("encoder", "decoder")) else f"rnn.{name}"
            sd[key] = torch.from_numpy(np.array(value))
        self.load_state_dict(sd, strict=True)  # exact names and shapes, no conversion


def _grad_of(tm: TorchModel, name: str):
    key = name if name.startswith(("encoder", "decoder")) else f"rnn.{name}"
    return dict(tm.named_parameters())[key].grad.numpy()


def _close(ours, ref):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max() + 1e-8


CASES = [
    # variant (tests/reference.py), layers, embed, hidden, carried state
    ("lstm", 2, 0, 32, False),
    ("lstm", 2, 0, 32, True),
    ("lstm", 1, 12, 20, True),
    ("gru", 2, 0, 32, True),
    ("gru", 3, 12, 16, False),
    ("rnn", 2, 0, 32, True),
    ("rnn-relu", 2, 0, 24, True),
    ("rnn", 1, 8, 16, False),
    ("lstm-nobias", 2, 0, 24, True),
    ("gru-nobias", 2, 6, 16, True),
    ("rnn-nobias", 2, 0, 16, True),
    ("lstm-proj", 2, 0, 24, True),
    ("lstm-proj", 1, 8, 16, False),
    ("lstm-proj-nobias", 3, 0, 16, True),
]


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("variant,layers,embed,hidden,carried", CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_loss_and_gradients_equal_torch(variant, layers, embed, hidden, carried, threads):
    V, B, T = 23, 20, 17
    cfg = ModelConfig(**reference.VARIANTS[variant], vocab_size=V, hidden=hidden, layers=layers,
                      embed=embed)  # fmt: skip
    rng = np.random.default_rng(0)
    model = CharRNN.create(cfg, rng)
    model.set_threads(threads)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    if carried:
        state = tuple(rng.uniform(-1, 1, s.shape).astype(np.float32) for s in model.zero_state(B))
    else:
        state = model.zero_state(B)
    res = model.loss_and_grad(x, y, state)

    tm = TorchModel(cfg)
    tm.load_ours(model.params)
    tstate = tuple(torch.from_numpy(s.copy()).requires_grad_(True) for s in state)
    logits, new = tm(torch.from_numpy(x), tstate)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
    loss.backward()

    assert res.loss == pytest.approx(loss.item(), rel=1e-6)
    for name in model.params:
        assert _close(res.grads[name], _grad_of(tm, name)), name
    new = new if isinstance(new, tuple) else (new,)
    for ours, ref in zip(res.state, new, strict=True):
        assert _close(ours, ref.detach().numpy())
    for ours, ref in zip(res.dstate, tstate, strict=True):
        assert _close(ours, ref.grad.numpy())
    fr = model.forward(x, state)
    assert _close(fr.logits, logits.detach().numpy())


def test_dropout_matches_torch_with_same_masks():
    """torch.nn.LSTM(dropout=p) drops the outputs of every layer but the last, and our top
    layer's output is dropped before the decoder as well (torch.nn.Dropout there, as char-rnn):
    reproduce it with explicit per-layer modules and our masks."""
    V, B, T, H = 11, 4, 9, 16
    cfg = ModelConfig(cell="lstm", vocab_size=V, hidden=H, layers=3, dropout=0.3)
    rng = np.random.default_rng(1)
    model = CharRNN.create(cfg, rng)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    masks = [((rng.random((B, T, H)) >= 0.3) / 0.7).astype(np.float32) for _ in range(3)]
    res = model.loss_and_grad(x, y, None, masks=masks)
    layers = []
    inp = torch.nn.functional.one_hot(torch.from_numpy(x), V).float()
    for k in range(3):
        lstm = torch.nn.LSTM(V if k == 0 else H, H, batch_first=True)
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{n}_l0").data = torch.from_numpy(model.params[f"{n}_l{k}"].copy())
        layers.append(lstm)
        inp, _ = lstm(inp)
        inp = inp * torch.from_numpy(masks[k])
    dec = torch.nn.Linear(H, V)
    dec.weight.data = torch.from_numpy(model.params["decoder.weight"].copy())
    dec.bias.data = torch.from_numpy(model.params["decoder.bias"].copy())
    target = torch.from_numpy(y).reshape(-1)
    loss = torch.nn.functional.cross_entropy(dec(inp).reshape(-1, V), target)
    loss.backward()
    assert res.loss == pytest.approx(loss.item(), rel=1e-6)
    for k, lstm in enumerate(layers):
        assert _close(res.grads[f"weight_hh_l{k}"], lstm.weight_hh_l0.grad.numpy())
        assert _close(res.grads[f"weight_ih_l{k}"], lstm.weight_ih_l0.grad.numpy())
    assert _close(res.grads["decoder.weight"], dec.weight.grad.numpy())


def test_init_distribution_like_torch():
    """Same bounds as PyTorch's defaults: compare extreme values of large samples."""
    cfg = ModelConfig(cell="gru", vocab_size=40, hidden=50, layers=1, embed=10)
    model = CharRNN.create(cfg, np.random.default_rng(0))
    tm = TorchModel(cfg)
    for name, value in model.params.items():
        ref = (
            dict(tm.named_parameters())[
                name if name.startswith(("encoder", "decoder")) else f"rnn.{name}"
            ]
            .detach()
            .numpy()
        )
        assert value.shape == ref.shape
        if name == "encoder.weight":
            assert abs(value.std() - ref.std()) < 0.15
        else:
            assert abs(np.abs(value).max() - np.abs(ref).max()) < 0.02
