"""The rule that sizes a model for its budget (charrnn/budget.py): a pure function, no timing."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from charrnn import budget
from charrnn.budget import LADDER, choose, count_params, dropout_for, remembered_speed
from charrnn.config import ModelConfig
from charrnn.model import CharRNN

SHAKESPEARE = 1_003_854  # training characters of tinyshakespeare's 90 % split


def base(cell: str = "lstm", vocab: int = 65, **kw) -> ModelConfig:
    return ModelConfig(cell=cell, vocab_size=vocab, **kw)


def test_flops_and_params_follow_the_model():
    """Parameter counts are the real model's; FLOPs grow as H^2 for wide layers."""
    for layers, hidden in LADDER[:4]:
        cfg = ModelConfig(cell="lstm", vocab_size=65, hidden=hidden, layers=layers)
        model = CharRNN.create(cfg, np.random.default_rng(0))
        assert count_params(cfg) == model.flat.size
    big, small = (budget.flops_per_char(base(hidden=h)) for h in (1024, 512))
    assert 3.5 < big / small < 4.0
    assert budget.flops_per_char(base("gru")) == pytest.approx(
        0.75 * budget.flops_per_char(base()), rel=0.02
    )
    # the coupled-gate LSTM has three gate blocks: a quarter fewer recurrent FLOPs
    assert budget.flops_per_char(base("cifg")) < 0.8 * budget.flops_per_char(base())


def test_more_budget_never_picks_a_smaller_model():
    sizes = []
    for seconds, gflops in itertools.product((30, 120, 600, 1800, 7200), (50, 200, 800)):
        c = choose(base("lstm", 65), train_chars=SHAKESPEARE, seconds=seconds, gflops=gflops)
        sizes.append(((seconds * gflops), c.params))
    sizes.sort()
    params = [p for _, p in sizes]
    assert params == sorted(params)
    assert len(set(params)) >= 4  # the budget really moves the choice


def test_the_chosen_model_reads_enough_and_the_next_does_not():
    c = choose(base("lstm", 65), train_chars=50_000_000, seconds=600, gflops=200)
    assert c.reads >= budget.READS_PER_PARAM * c.params
    i = LADDER.index((c.layers, c.hidden))
    bigger = LADDER[i + 1]
    c2 = choose(
        base("lstm", 65), train_chars=50_000_000, seconds=600, gflops=200,
        layers=bigger[0], hidden=bigger[1],
    )  # fmt: skip
    assert c2.reads < budget.READS_PER_PARAM * c2.params
    assert f"{bigger[0]}×{bigger[1]} would read" in c.reason


def test_a_small_corpus_bounds_the_model_whatever_the_budget():
    c = choose(base("lstm", 80), train_chars=100_000, seconds=36_000, gflops=1000)
    assert c.params <= budget.PARAMS_PER_CHAR * 100_000
    assert "parameters per training character" in c.reason
    tiny = choose(base("lstm", 80), train_chars=500, seconds=600, gflops=200)
    assert (tiny.layers, tiny.hidden) == LADDER[0]  # nothing fits: the smallest


def test_steps_and_epochs_budgets_need_no_timing():
    a = choose(base("lstm", 65), train_chars=SHAKESPEARE, chars=10 * SHAKESPEARE)
    b = choose(base("lstm", 65), train_chars=SHAKESPEARE, chars=10 * SHAKESPEARE)
    assert a == b and a.reads == 10 * SHAKESPEARE
    # with a time budget as well, the smaller of the two decides
    both = choose(base("lstm", 65), train_chars=SHAKESPEARE, chars=1e5, seconds=3600, gflops=500)
    assert both.reads == 1e5


def test_user_flags_win():
    c = choose(base("lstm", 65), train_chars=SHAKESPEARE, seconds=600, gflops=200, hidden=100)
    assert (c.layers, c.hidden) == (2, 100)
    c = choose(base("lstm", 65), train_chars=SHAKESPEARE, seconds=600, gflops=200, dropout=0.0)
    assert c.dropout == 0.0
    c = choose(base("gru", 65), train_chars=SHAKESPEARE, seconds=600, gflops=200, layers=3)
    assert c.layers == 3 and c.hidden in {h for _, h in LADDER}


def test_no_budget_keeps_the_default_size():
    c = choose(base("lstm", 65), train_chars=SHAKESPEARE)
    assert (c.layers, c.hidden) == budget.DEFAULT_SIZE and c.reads is None
    assert "no budget" in c.reason


def test_dropout_grows_with_the_epochs_a_budget_trains():
    values = [dropout_for(e) for e in (0.5, 3, 10, 14, 20, 40, 1000)]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == budget.DROPOUT_MAX
    assert dropout_for(budget.DROPOUT_EPOCHS) == budget.DROPOUT_AT
    assert all(round(v * 20) == pytest.approx(v * 20) for v in values)  # coarse steps
    # through choose: the same model trained for more epochs gets more dropout
    short, long = (
        choose(base(), train_chars=SHAKESPEARE, chars=e * SHAKESPEARE, hidden=256) for e in (5, 40)
    )
    assert short.dropout < long.dropout
    # a corpus far larger than the budget reads: no dropout
    huge = choose(base(), train_chars=10**10, seconds=600, gflops=200)
    assert huge.dropout == 0.0


def test_remembered_speed_holds_against_jitter(tmp_path):
    path = tmp_path / "speed.json"
    assert remembered_speed(100.0, "host", path) == 100.0
    for jitter in (0.6, 0.9, 1.1, 1.25):  # slower under load, or a little faster: kept
        assert remembered_speed(100.0 * jitter, "host", path) == 100.0
    assert remembered_speed(140.0, "host", path) == 140.0  # the first was taken under load
    assert remembered_speed(50.0, "host", path) == 140.0  # under heavy load: kept
    assert remembered_speed(40.0, "host", path) == 40.0  # over 3x slower: another machine
    assert remembered_speed(75.0, "other", path) == 75.0
    assert json.loads(path.read_text()) == {"host": 40.0, "other": 75.0}
    path.write_text("{not json")
    assert remembered_speed(90.0, "host", path) == 90.0


def test_jitter_never_flips_the_choice(tmp_path):
    """The same command on the same machine picks the same model run after run: measurements
    scatter around the machine's speed (load slows it down, rarely speeds it up)."""
    path = tmp_path / "speed.json"
    rng = np.random.default_rng(0)
    picks = set()
    remembered_speed(200.0, "host", path)  # once seen idle ...
    for _ in range(50):  # ... from then on
        g = remembered_speed(200.0 * rng.uniform(0.4, 1.25), "host", path)
        c = choose(base("lstm", 65), train_chars=SHAKESPEARE, seconds=600, gflops=g)
        picks.add((c.layers, c.hidden, c.dropout))
    assert len(picks) == 1


# ----------------------------------------------------------------------------- through the CLI

TEXT = (
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
) * 40


def _train(tmp_path, monkeypatch, *args: str):
    from typer.testing import CliRunner

    from charrnn.cli import app

    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "ck"
    r = CliRunner().invoke(
        app,
        ["train", str(corpus), "--out", str(out), "--quiet", "--threads", "1", "--batch", "4",
         "--seq", "8", "--force", *args],
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    from charrnn.checkpoint import load

    return r, load(out / "c-latest.npz")


def test_weight_drop_goes_with_a_high_dropout_only():
    assert budget.weight_drop_for(0.3) == 0.25  # 17.7 epochs on Zen 5: better with it
    assert budget.weight_drop_for(0.25) == 0.0  # 11.4 epochs on Zen 1: worse with it
    assert budget.weight_drop_for(0.0) == budget.weight_drop_for(0.2) == 0.0
    values = [budget.weight_drop_for(d) for d in (0.0, 0.1, 0.15, 0.2, 0.3, 0.35, 0.5)]
    assert values == sorted(values) and values[-1] == 0.45
    assert all(round(v * 20) == pytest.approx(v * 20) for v in values)  # coarse steps


def test_weight_drop_follows_the_chosen_or_given_dropout_unless_set(tmp_path, monkeypatch):
    _, ckpt = _train(tmp_path, monkeypatch, "--steps", "3")
    assert ckpt.config.weight_drop == budget.weight_drop_for(ckpt.config.dropout)
    _, ckpt = _train(tmp_path, monkeypatch, "--steps", "2", "--hidden", "9", "--dropout", "0.4")
    assert ckpt.config.weight_drop == 0.35
    _, ckpt = _train(
        tmp_path, monkeypatch, "--steps", "2", "--dropout", "0.4", "--weight-drop", "0"
    )
    assert ckpt.config.weight_drop == 0.0
    _, ckpt = _train(tmp_path, monkeypatch, "--steps", "2", "--preset", "char-rnn")
    assert ckpt.config.weight_drop == 0.0  # the preset has no dropout, so no weight drop


def test_a_budget_sizes_the_model_says_so_and_stores_it(tmp_path, monkeypatch):
    r, ckpt = _train(tmp_path, monkeypatch, "--steps", "3")
    lines = [line for line in r.stderr.splitlines() if "chosen for the budget" in line]
    assert len(lines) == 1
    cfg = ckpt.config
    pin = f"--layers {cfg.layers} --hidden {cfg.hidden} --dropout {cfg.dropout:g}"
    assert lines[0].endswith(pin)
    sizing = ckpt.meta["sizing"]
    assert (sizing["layers"], sizing["hidden"], sizing["dropout"]) == (
        cfg.layers, cfg.hidden, cfg.dropout,
    )  # fmt: skip
    assert sizing["reads"] == 3 * 4 * 8 and sizing["gflops"] is None  # steps: no timing
    # 3,000 characters allow no more than the smallest rung's parameters
    assert (cfg.layers, cfg.hidden) == LADDER[0]


def test_a_time_budget_measures_the_machine(tmp_path, monkeypatch):
    r, ckpt = _train(tmp_path, monkeypatch, "--max-time", "3s")
    sizing = ckpt.meta["sizing"]
    assert sizing["gflops"] > 0 and 0 < sizing["probe_seconds"] < 3
    assert "GFLOP/s measured here" in r.stderr
    assert (tmp_path / "cache" / "speed.json").exists()


def test_explicit_flags_are_not_sized(tmp_path, monkeypatch):
    r, ckpt = _train(
        tmp_path, monkeypatch, "--steps", "2", "--layers", "1", "--hidden", "9", "--dropout", "0"
    )
    assert "chosen for the budget" not in r.stderr and ckpt.meta["sizing"] is None
    r, ckpt = _train(tmp_path, monkeypatch, "--steps", "2", "--hidden", "9")
    assert ckpt.config.hidden == 9 and ckpt.meta["sizing"]["hidden"] == 9
    r, ckpt = _train(tmp_path, monkeypatch, "--steps", "2", "--preset", "char-rnn")
    assert "chosen for the budget" not in r.stderr and ckpt.config.hidden == 128
