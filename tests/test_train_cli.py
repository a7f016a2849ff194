"""`charrnn train` driven through the CLI: a real tiny run, exact resume, bad input, safety."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_asserts import one_line_error
from typer.testing import CliRunner

from charrnn.cli import app
from charrnn.train import MAX_EPOCHS, PATIENCE

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
) * 12
TINY = ["--hidden", "12", "--layers", "1", "--batch", "4", "--seq", "8", "--threads", "1"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))


def train(*args: str):
    return CliRunner().invoke(app, ["train", *args], catch_exceptions=False)


def test_tiny_run_writes_checkpoints_and_summary(corpus, tmp_path):
    out = tmp_path / "ck"
    log = tmp_path / "log.jsonl"
    r = train(
        str(corpus),
        *TINY,
        "--steps",
        "30",
        "--eval-every",
        "10",
        "--out",
        str(out),
        "--quiet",
        "--log-jsonl",
        str(log),
    )
    assert r.exit_code == 0, r.stderr
    assert "best val loss" in r.stdout and "charrnn sample --checkpoint" in r.stdout
    assert len(r.stderr.strip().splitlines()) >= 3  # the start line and a line per evaluation
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [rec["step"] for rec in records] == [10, 20, 30]
    assert records[-1]["val_loss"] < records[0]["val_loss"] + 0.5
    from charrnn.checkpoint import load

    latest = load(out / "corpus-latest.npz")
    best = load(out / "corpus-best.npz")
    assert latest.meta["step"] == 30 and latest.config.hidden == 12
    assert latest.meta["history"]["step"] == [10, 20, 30]
    assert best.meta["best_val_loss"] == min(rec["val_loss"] for rec in records)
    assert np.array_equal(latest.vocab.codepoints, np.unique([ord(c) for c in TEXT]))


def test_resume_is_exact(corpus, tmp_path):
    """N steps, then --resume for N more, equals 2N steps straight (single thread, dropout on).

    The schedule must not depend on the budget here (a cosine spans --steps, so a 12-step run
    decays differently from a 24-step one); the next test covers an interrupted cosine run."""
    common = [
        str(corpus),
        "--hidden",
        "10",
        "--layers",
        "2",
        "--dropout",
        "0.2",
        "--batch",
        "3",
        "--seq",
        "7",
        "--threads",
        "1",
        "--eval-every",
        "5",
        "--quiet",
        "--schedule",
        "constant",
    ]
    assert train(*common, "--steps", "24", "--out", str(tmp_path / "a")).exit_code == 0
    assert train(*common, "--steps", "12", "--out", str(tmp_path / "b")).exit_code == 0
    r = train(*common, "--steps", "24", "--resume", str(tmp_path / "b" / "corpus-latest.npz"))
    assert r.exit_code == 0, r.stderr
    from charrnn.checkpoint import load

    a = load(tmp_path / "a" / "corpus-latest.npz")
    b = load(tmp_path / "b" / "corpus-latest.npz")
    assert a.meta["step"] == b.meta["step"] == 24
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    for name in a.optim:
        assert np.array_equal(a.optim[name], b.optim[name]), name
    for name in a.state:
        assert np.array_equal(a.state[name], b.state[name]), name
    assert a.meta["rng_state"] == b.meta["rng_state"]
    assert a.meta["data_position"] == b.meta["data_position"]


def test_interrupted_run_resumes_exactly(corpus, tmp_path):
    """A run stopped at step 11 (as Ctrl-C stops it) and resumed with the same budget ends
    bit for bit where the uninterrupted run ends, with the default cosine schedule."""
    from charrnn.checkpoint import load
    from charrnn.runs import Request, build_configs, prepare
    from charrnn.train import StopRule, Trainer

    model, cfg, explicit = build_configs(
        None, {"hidden": 10, "layers": 2, "batch": 3, "seq": 7, "threads": 1}
    )
    assert cfg.schedule == "cosine" and model["dropout"] > 0

    def run(out, stop_at=None, resume=None):
        req = Request([str(corpus)], model, cfg, explicit, out=out, resume=resume)
        r, _ = prepare(req)
        trainer = Trainer(r, StopRule(steps=24), lambda e: None, eval_every=5)

        def emit(event):
            if event.kind == "step" and event.step == stop_at:
                trainer.request_stop()

        trainer.emit = emit
        return trainer.train()

    assert run(tmp_path / "a") == "reached 24 steps"
    assert run(tmp_path / "b", stop_at=11) == "interrupted"
    assert load(tmp_path / "b" / "corpus-latest.npz").meta["step"] == 11
    run(None, resume=tmp_path / "b" / "corpus-latest.npz")
    a = load(tmp_path / "a" / "corpus-latest.npz")
    b = load(tmp_path / "b" / "corpus-latest.npz")
    assert b.meta["step"] == 24
    for group in ("params", "optim", "state"):
        for name, value in getattr(a, group).items():
            assert np.array_equal(value, getattr(b, group)[name]), (group, name)


def test_bundled_corpus_by_default(tmp_path):
    r = train(*TINY, "--steps", "2", "--out", str(tmp_path), "--quiet")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "shakespeare-latest.npz").exists()


def test_other_runs_checkpoint_is_not_overwritten(corpus, tmp_path):
    out = tmp_path / "ck"
    assert train(str(corpus), *TINY, "--steps", "3", "--out", str(out), "--quiet").exit_code == 0
    before = (out / "corpus-latest.npz").read_bytes()
    r = train(str(corpus), *TINY, "--steps", "3", "--out", str(out), "--quiet")
    err = one_line_error(r, 2)
    assert "--force" in err and "--resume" in err
    assert (out / "corpus-latest.npz").read_bytes() == before
    r = train(str(corpus), *TINY, "--steps", "3", "--out", str(out), "--quiet", "--force")
    assert r.exit_code == 0 and (out / "corpus-latest.npz").read_bytes() != before


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["{missing}"], 1, "no such file"),
        (["{dir}"], 1, "no text files in it"),  # a folder is read; an empty one is an error
        (["{empty}"], 1, "empty"),
        (["{corpus}", "--hidden", "0"], 2, "hidden"),
        (["{corpus}", "--dropout", "1.5"], 2, "dropout"),
        (["{corpus}", "--model", "transformer"], 2, "unknown model"),
        (["{corpus}", "--max-time", "soon"], 2, "duration"),
        (["{corpus}", "--steps", "0"], 2, "steps"),
        (["{corpus}", "--lr", "-1"], 2, "lr"),
        (["{corpus}", "--preset", "gpt"], 2, "preset"),
        (["{corpus}", "--errors", "ignore"], 2, "--errors"),
        (["{corpus}", "--out", "{file}"], 2, "not a directory"),
        (["{corpus}", "--out", "{file}/sub"], 1, "cannot write"),
        (["{corpus}", "--resume", "{missing}"], 1, "missing"),
        (["{corpus}", "--init-from", "{corpus}"], 1, "checkpoint"),
        (["{corpus}", "--val-fraction", "1.2"], 2, "--val-fraction and --test-fraction"),
        (["{corpus}", "--val-fraction", "0.5", "--test-fraction", "0.5"], 2, "sum to less"),
        (["{corpus}", "--test-fraction", "-0.1"], 2, "--test-fraction"),
    ],
)
def test_bad_input_is_one_line(corpus, tmp_path, args, code, words):
    (tmp_path / "d").mkdir()
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "file").write_text("x")
    paths = {
        "missing": tmp_path / "missing.txt",
        "dir": tmp_path / "d",
        "empty": tmp_path / "empty.txt",
        "corpus": corpus,
        "file": tmp_path / "file",
    }
    argv = [a.format(**paths) for a in args]
    # the case's own flags come last, so they win over the common ones
    r = train(*TINY, "--steps", "2", "--out", str(tmp_path / "ck"), "--quiet", *argv)
    err = one_line_error(r, code)
    assert words.lower() in err.lower(), err


def test_resume_refuses_text_with_new_characters(corpus, tmp_path):
    """--init-from extends the vocabulary (tests/test_finetune.py); --resume never does."""
    out = tmp_path / "ck"
    assert train(str(corpus), *TINY, "--steps", "2", "--out", str(out), "--quiet").exit_code == 0
    other = tmp_path / "other.txt"
    other.write_text("zzzz qqqq 12345 ☃☃☃ " * 50, encoding="utf-8")
    r = train(
        str(other), *TINY, "--steps", "4", "--quiet", "--resume", str(out / "corpus-latest.npz")
    )
    err = one_line_error(r, 1)
    assert "vocabulary" in err and "'☃'" in err and "--init-from" in err


def test_init_from_takes_weights_with_fresh_optimizer(corpus, tmp_path):
    out = tmp_path / "ck"
    assert train(str(corpus), *TINY, "--steps", "4", "--out", str(out), "--quiet").exit_code == 0
    r = train(
        str(corpus),
        *TINY,
        "--steps",
        "1",
        "--out",
        str(tmp_path / "n"),
        "--quiet",
        "--init-from",
        str(out / "corpus-latest.npz"),
        "--name",
        "fine",
    )
    assert r.exit_code == 0, r.stderr
    from charrnn.checkpoint import load

    new = load(tmp_path / "n" / "fine-latest.npz")
    assert (
        new.meta["step"] == 1
        and new.meta["run_id"] != load(out / "corpus-latest.npz").meta["run_id"]
    )


def test_stdin_corpus(tmp_path, monkeypatch):
    r = CliRunner().invoke(
        app, ["train", "-", *TINY, "--steps", "2", "--out", str(tmp_path), "--quiet"], input=TEXT
    )
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "stdin-latest.npz").exists()


def test_help_has_example():
    r = CliRunner().invoke(app, ["train", "--help"])
    assert r.exit_code == 0 and "charrnn train poems.txt" in r.stdout


def test_split_fractions_are_kept_and_cannot_change_on_resume(corpus, tmp_path):
    from charrnn.checkpoint import load
    from charrnn.data import split_ids

    out = tmp_path / "ck"
    r = train(str(corpus), *TINY, "--steps", "4", "--eval-every", "2", "--out", str(out),
              "--quiet", "--val-fraction", "0.2", "--test-fraction", "0")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    ckpt = load(out / "corpus-latest.npz")
    cfg = ckpt.meta["train_config"]
    assert (cfg["val_fraction"], cfg["test_fraction"]) == (0.2, 0.0)
    # what validation scored is the split those fractions cut
    _, val, test = split_ids(len(TEXT), 0.2, 0.0)
    assert val.stop - val.start == round(len(TEXT) * 0.2) and test.stop == test.start
    # no test split: eval without a file says what to do
    err = one_line_error(CliRunner().invoke(app, ["eval", "-c", str(out / "corpus-best.npz")]), 1)
    assert "--test-fraction 0" in err and "eval FILE" in err
    r = train("--resume", str(out / "corpus-latest.npz"), "--steps", "6", "--quiet",
              "--val-fraction", "0.1")  # fmt: skip
    assert "--val-fraction cannot change on --resume (the run uses 0.2)" in one_line_error(r, 2)


def test_no_validation_split_trains_to_the_epoch_limit_and_keeps_latest(corpus, tmp_path):
    out = tmp_path / "ck"
    # no stopping flag: early stopping has no val loss to watch, so the epoch limit stops it
    r = train(str(corpus), *TINY, "--eval-every", "200", "--out", str(out), "--quiet",
              "--val-fraction", "0")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "no validation split to stop early on" in r.stderr
    assert f"reached {MAX_EPOCHS} epochs" in r.stdout
    assert len(r.stderr.splitlines()) > 1 + PATIENCE  # more evaluations than patience allows
    assert not (out / "corpus-best.npz").exists()
    assert f"sample from it: charrnn sample --checkpoint {out / 'corpus-latest.npz'}" in r.stdout
