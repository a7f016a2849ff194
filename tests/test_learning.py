"""It learns: on a synthetic corpus whose blocks are `k random letters, '-', the same k letters,
newline`, each cell must predict the copied letters (a dependency k+1 steps back), which takes
the held-out loss well below both the unigram entropy and what a model that only learns the
block structure can reach."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.config import ModelConfig, TrainConfig
from charrnn.model import CharRNN
from charrnn.optim import clip_gradients, get_lr, make_optimizer


def corpus(n_blocks: int, k: int, rng: np.random.Generator) -> np.ndarray:
    letters = rng.integers(0, 4, (n_blocks, k))
    dash, newline = np.full((n_blocks, 1), 4), np.full((n_blocks, 1), 5)
    return np.concatenate([letters, dash, letters, newline], 1).reshape(-1)


@pytest.mark.parametrize(
    "cell,nl,layers,embed,dropout,optimizer,lr,k",
    [
        ("rnn", "tanh", 1, 0, 0.0, "adam", 1e-2, 4),
        ("rnn", "relu", 1, 0, 0.0, "adam", 1e-2, 2),  # a plain relu RNN learns more slowly
        ("lstm", "tanh", 1, 0, 0.0, "adam", 1e-2, 4),
        ("gru", "tanh", 1, 0, 0.0, "adam", 1e-2, 4),
        ("lstm", "tanh", 2, 8, 0.1, "rmsprop", 5e-3, 4),
    ],
)
def test_learns_copy_task(cell, nl, layers, embed, dropout, optimizer, lr, k):
    optimum = k * np.log(4) / (2 * k + 2)  # only the first k letters of a block are random
    no_copy = 2 * k * np.log(4) / (2 * k + 2)  # structure learned, copied letters guessed
    rng = np.random.default_rng(0)
    train, held_out = corpus(6000, k, rng), corpus(200, k, rng)
    unigram = np.bincount(train) / train.size
    entropy = -(unigram * np.log(unigram)).sum()
    cfg = ModelConfig(cell=cell, vocab_size=6, hidden=32, layers=layers, embed=embed,
                      nonlinearity=nl, dropout=dropout)  # fmt: skip
    model = CharRNN.create(cfg, np.random.default_rng(1))
    tcfg = TrainConfig(optimizer=optimizer, lr=lr, schedule="cosine", warmup_steps=20)
    opt = make_optimizer(tcfg, model.flat.size)
    B, T, steps = 16, 32, 400
    streams = train[: train.size // B * B].reshape(B, -1)
    state, pos = model.zero_state(B), 0
    for step in range(steps):
        if pos + T + 1 > streams.shape[1]:
            pos, state = 0, model.zero_state(B)
        x, y = streams[:, pos : pos + T], streams[:, pos + 1 : pos + T + 1]
        pos += T
        res = model.loss_and_grad(x, y, state, rng=rng)
        state = res.state
        clip_gradients(res.grad_flat, 5.0, "norm")
        opt.step(model.flat, res.grad_flat, get_lr(step, 0.0, tcfg, steps))
    nll, _ = model.nll(held_out[None, :-1], held_out[None, 1:], None)
    loss = nll[0, 20:].mean()  # after a short warm-up of the state
    assert loss < (optimum + no_copy) / 2 < entropy, (loss, optimum, no_copy, entropy)
