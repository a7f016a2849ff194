"""Every option at its limits: a value that cannot work is one line and exit status 2 before any
work; a huge value that can work does (found by trying each option as a hostile user would)."""

import pytest
from cli_asserts import one_line_error
from typer.testing import CliRunner

import charrnn.data
from charrnn.cli import app
from charrnn.runs import parse_duration


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--epochs", "inf"], "--epochs must be positive and finite"),
        (["--epochs", "nan"], "--epochs must be positive and finite"),
        (["--rng-seed", "-1"], "rng_seed must be 0 or more"),
        (["--warmup-steps", "-1"], "warmup_steps must be 0 or more"),
        (["--lr", "inf"], "lr must be positive"),
        (["--lr", "nan"], "lr must be positive"),
        (["--clip", "nan"], "clip must be 0 (off) or positive"),
        (["--clip", "inf"], "clip must be 0 (off) or positive"),
        (["--optimizer", "adamw", "--weight-decay", "nan"], "weight_decay must be 0 or positive"),
        (["--weight-decay", "-0.1"], "weight_decay must be 0 or positive"),
        (["--forget-bias", "inf"], "forget_bias must be a finite number"),
        (["--max-time", "9" * 400 + "s"], "is not a duration"),
        (["--name", "x" * 400], "the run name is too long"),
    ],
)
def test_impossible_values_are_refused_before_any_work(tmp_path, monkeypatch, args, fragment):
    def boom(*a, **k):
        raise AssertionError("the corpus was read")

    monkeypatch.setattr(charrnn.data, "load_corpus", boom)
    r = CliRunner().invoke(app, ["train", str(tmp_path / "c.txt"), "--out", str(tmp_path), *args])
    assert fragment in one_line_error(r, 2)


def test_huge_but_possible_values_run(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcd efgh\n" * 30)
    r = CliRunner().invoke(
        app,
        ["train", str(corpus), "--hidden", "4", "--layers", "1", "--quiet", "--out", str(tmp_path),
         "--steps", str(10**20 // 10**18), "--eval-every", str(10**20), "--rng-seed", str(10**30),
         "--max-time", "9" * 30 + "d", "--threads", "1000", "--batch", "1000000"],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "shorter than one batch" in r.stderr  # the batch shrank to fit the text


def test_durations_stay_finite():
    assert parse_duration("1h30m") == 5400
    with pytest.raises(Exception, match="not a duration"):
        parse_duration("1" + "0" * 400 + "s")
