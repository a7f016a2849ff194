"""The loop's own arithmetic: how often it evaluates by default, and the validation figure."""

import numpy as np
import pytest

from charrnn.config import ModelConfig
from charrnn.model import CharRNN
from charrnn.train import EVAL_SPACING, MAX_EVAL_CHARS, default_eval_every, validation_loss


def test_evaluations_are_half_an_epoch_apart_but_never_cost_more_than_a_tenth():
    # B50 T100 on tinyshakespeare: 200 steps an epoch, half of it; unchanged by the spacing
    assert default_eval_every(200, 5000, 55_770) == 100
    assert default_eval_every(40_000, 5000, 55_770) == 1000  # at most 1000 steps ...
    assert default_eval_every(6, 5000, 500) == 10  # ... and at least 10
    # B1 T25: 1000 steps would train 25,000 characters between scorings of 55,769
    assert default_eval_every(40_000, 25, 55_770) == -(-EVAL_SPACING * 55_769 // 25)
    # the scored characters are capped as validation_loss caps them
    assert default_eval_every(10**7, 1, 10**8) == EVAL_SPACING * MAX_EVAL_CHARS
    assert default_eval_every(200, 25, 0) == 100  # no validation split


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_validation_figure_carries_the_state_through_each_stream(cell):
    """`batch` streams, each read from the zero state to its end in one pass: the mean of the
    single passes over each stream; on two cores with one stream, the split pass's bits."""
    cfg = ModelConfig(cell=cell, vocab_size=9, hidden=6, layers=2)
    model = CharRNN.create(cfg, np.random.default_rng(0))
    ids = np.random.default_rng(1).integers(0, 9, 1001)
    for batch in (1, 3, 5):
        n = (len(ids) - 1) // batch
        want = []
        for b in range(batch):
            x, y = ids[b * n : (b + 1) * n], ids[b * n + 1 : (b + 1) * n + 1]
            want.append(model.nll(x[None], y[None])[0].sum())
        got = validation_loss(model, ids, batch, seq=7)
        assert got == pytest.approx(sum(want) / (batch * n), rel=1e-6)
    one = validation_loss(model, ids, 1, seq=25)
    model.set_threads(2)
    assert validation_loss(model, ids, 1, seq=25) == one
