"""The cell options end to end through the CLI: train, exact --resume, sample on both engines
(one core and two), eval and inspect, for every option of charrnn.cells (tiny models)."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_asserts import ok, one_line_error
from typer.testing import CliRunner

from charrnn.checkpoint import load
from charrnn.cli import app

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
) * 8
COMMON = ["--hidden", "8", "--layers", "2", "--batch", "3", "--seq", "7", "--threads", "1",
          "--eval-every", "5", "--quiet", "--schedule", "constant", "--dropout", "0.2"]  # fmt: skip

BIASES = ["bias_ih_l0", "bias_hh_l0"]
PEEPHOLES = ["weight_ci_l0", "weight_cf_l0", "weight_co_l0"]
# option flags, what `inspect` shows after "dropout 0.2" for them, and the tensors of layer 0
# beyond weight_ih_l0 and weight_hh_l0
VARIANTS = [
    pytest.param(["--model", "rnn", "--no-bias"], "  tanh  no bias", [], id="rnn-nobias"),
    pytest.param(["--model", "gru", "--no-bias"], "  no bias", [], id="gru-nobias"),
    pytest.param(["--no-bias"], "  no bias", [], id="lstm-nobias"),
    pytest.param(["--model", "cifg"], "", BIASES, id="cifg"),
    pytest.param(["--peephole"], "  peephole", [*BIASES, *PEEPHOLES], id="lstm-peephole"),
    pytest.param(["--proj", "4"], "  proj 4", [*BIASES, "weight_hr_l0"], id="lstm-proj"),
    pytest.param(
        ["--peephole", "--proj", "3", "--no-bias"],
        "  peephole  proj 3  no bias",
        ["weight_hr_l0", *PEEPHOLES],
        id="lstm-peephole-proj-nobias",
    ),
]


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def train(*args: str) -> None:
    """A training run that ends well (its log lines go to stderr)."""
    r = run("train", *args)
    assert r.exit_code == 0, r.stderr


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    Path("corpus.txt").write_text(TEXT, encoding="utf-8")


@pytest.mark.parametrize("flags,shown,extra", VARIANTS)
def test_train_resume_sample_eval_inspect(flags, shown, extra, monkeypatch):
    # train 20 steps straight, and 10 + 10 with --resume: the same bits
    train("corpus.txt", *COMMON, *flags, "--steps", "20", "--out", "a")
    train("corpus.txt", *COMMON, *flags, "--steps", "10", "--out", "b")
    train("--resume", "b/corpus-latest.npz", "--steps", "20", "--quiet")
    a, b = load("a/corpus-latest.npz"), load("b/corpus-latest.npz")
    assert b.meta["step"] == 20
    for section in ("params", "optim", "state"):
        x, y = getattr(a, section), getattr(b, section)
        assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x), section
    layer0 = [n for n in a.params if n.endswith("_l0")]
    assert layer0 == ["weight_ih_l0", "weight_hh_l0", *extra]
    # an option cannot change on --resume
    flag = flags[-1] if flags[-1].startswith("--") else flags[-2]
    if flag != "--model":
        err = one_line_error(run("train", "--resume", "b/corpus-latest.npz", _opposite(flag)), 2)
        assert "cannot change when continuing" in err

    # sample: the NumPy step; the fused kernel on one core and on two gives one text
    texts = {}
    for engine, cores in (("numpy", 2), ("numba", 1), ("numba", 2)):
        monkeypatch.setattr("charrnn.sample.cpu_count", lambda cores=cores: cores)
        out = ok(run("sample", "-c", "a/corpus-best.npz", "-n", "300", "--rng-seed", "3",
                     "--seed", "First", "--engine", engine))  # fmt: skip
        assert out.startswith("First") and len(out) >= 300
        texts[engine, cores] = out
    assert texts["numba", 1] == texts["numba", 2]

    # eval scores the test split; inspect names the options
    score = json.loads(ok(run("eval", "-c", "a/corpus-best.npz", "--json")))
    assert 0 < score["bits_per_char"] < 8
    summary = ok(run("inspect", "a/corpus-best.npz"))
    model = next(line for line in summary.splitlines() if line.startswith("model"))
    # dropout 0.2 has no weight drop beside it (budget.weight_drop_for), then the options
    assert model.rstrip().endswith("dropout 0.2" + shown), summary
    info = json.loads(ok(run("inspect", "a/corpus-best.npz", "--json")))
    assert info["features"] == [w for w in shown.split("  ") if w]
    cell = flags[1] if flags[0] == "--model" else "lstm"
    twin = None if cell == "cifg" or "--peephole" in flags else f"torch.nn.{cell.upper()}"
    assert info["torch_module"] == twin
    assert (twin or "no torch.nn module") in summary
    # the units of a layer's output: hidden, or the projection's
    units = a.config.output_size
    top = json.loads(ok(run("inspect", "a/corpus-best.npz", "--top-neurons", "99", "--layer", "0",
                            "--text", "corpus.txt", "--json")))  # fmt: skip
    assert sorted(n["unit"] for n in top["neurons"]) == list(range(units))
    err = one_line_error(run("inspect", "a/corpus-best.npz", "--neuron", str(units), "--text",
                             "corpus.txt"), 2)  # fmt: skip
    assert f"--neuron must be in 0..{units - 1}" in err


def _opposite(flag: str) -> str:
    """A flag that asks for another value of the option `flag` sets."""
    return {"--no-bias": "--bias", "--peephole": "--no-peephole"}.get(flag, f"{flag}=0")


REFUSED = [
    (["--model", "cifg", "--peephole"], "--peephole is an option of --model lstm, not of --model"),
    (["--model", "gru", "--proj", "4"], "--proj is an option of --model lstm, not of --model gru"),
    (["--proj", "8"], "proj must be 0 (none) or less than hidden (8), got 8"),
    (["--proj", "-1"], "proj must be 0 (none) or less than hidden (8), got -1"),
    (["--no-bias", "--forget-bias", "1"], "--forget-bias sets a bias: it cannot go with --no-bias"),
]


@pytest.mark.parametrize("flags,message", REFUSED)
def test_options_a_cell_does_not_have_are_refused(flags, message):
    err = one_line_error(run("train", "corpus.txt", *COMMON, *flags, "--steps", "1"), 2)
    assert message in err
    assert not Path("checkpoints").exists()


def test_presets_take_the_options_and_explicit_flags_win(monkeypatch):
    from charrnn import config
    from charrnn.runs import build_configs

    options = {"cell": "cifg", "bias": False, "peephole": None, "proj": None}
    model, _, explicit = build_configs("char-rnn", options)
    assert model["cell"] == "cifg" and model["bias"] is False and model["hidden"] == 128
    assert explicit == {"cell", "bias"}
    monkeypatch.setitem(config.PRESETS, "lstmp", {"cell": "lstm", "peephole": True, "proj": 4})
    model, _, _ = build_configs("lstmp", {"peephole": False})
    assert model["peephole"] is False and model["proj"] == 4
    # through the CLI: min-char-rnn's vanilla RNN without biases
    train("corpus.txt", "--preset", "min-char-rnn", "--no-bias", "--steps", "3", "--quiet")
    cfg = load("checkpoints/corpus-latest.npz").config
    assert (cfg.cell, cfg.hidden, cfg.bias) == ("rnn", 100, False)


def test_a_checkpoint_written_before_the_options_reads_as_it_was():
    """Checkpoints from before bias, peephole and proj existed (and output dropout): their
    model_config lacks those fields; they load as the LSTM they were, and sample and score."""
    train("corpus.txt", *COMMON, "--steps", "5")
    with np.load("checkpoints/corpus-latest.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    for key in ("bias", "peephole", "proj", "output_dropout"):
        del meta["model_config"][key]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez("old.npz", **arrays)
    cfg = load("old.npz").config
    assert (cfg.bias, cfg.peephole, cfg.proj, cfg.output_dropout) == (True, False, 0, False)
    assert ok(run("sample", "-c", "old.npz", "-n", "20", "--seed", "F")).startswith("F")
    assert json.loads(ok(run("eval", "-c", "old.npz", "--json")))["chars"] > 0
