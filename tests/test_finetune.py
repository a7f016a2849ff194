"""Fine-tuning onto new text (`--init-from` extends the vocabulary; `--resume` never does):
charrnn/finetune.py, through runs.prepare and through the CLI."""

import numpy as np
import pytest
from cli_asserts import one_line_error
from typer.testing import CliRunner

from charrnn import finetune
from charrnn.checkpoint import load
from charrnn.cli import app
from charrnn.config import ModelConfig
from charrnn.errors import CheckpointError, UsageError
from charrnn.model import CharRNN
from charrnn.runs import Request, build_configs, prepare
from charrnn.vocab import Vocab

OLD = "the quick brown fox jumps over the lazy dog\n" * 30
NEW = "über naïve café: 42 €\nthe dog\n" * 30  # é, ï, ü, €, digits, ':' are new; most old stay
TINY = ["--layers", "1", "--batch", "4", "--seq", "8", "--threads", "1", "--quiet"]


@pytest.fixture(autouse=True)
def _texts(isolated):
    """In tmp_path, with a private corpus cache, and the texts the tests read."""
    tmp_path = isolated
    (tmp_path / "old.txt").write_text(OLD)
    (tmp_path / "new.txt").write_text(NEW)


def train(*args):
    return CliRunner().invoke(app, ["train", *args], catch_exceptions=False)


def base_checkpoint(embed: int = 0) -> str:
    r = train("old.txt", *TINY, "--hidden", "12", "--embed", str(embed), "--steps", "3",
              "--out", "ck", "--name", "old")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    return "ck/old-latest.npz"


def prepared(init_from: str, source: str = "new.txt", **kw):
    model, cfg, explicit = build_configs(None, {"batch": 4, "seq": 8, "threads": 1, "rng_seed": 5})
    req = Request([source], model, cfg, explicit, out="ft", init_from=init_from, **kw)
    return prepare(req)


@pytest.mark.parametrize("embed", [0, 5])
def test_trained_symbols_keep_their_weights_and_new_ones_start_fresh(embed):
    path = base_checkpoint(embed)
    old = load(path)
    run, warnings = prepared(path)
    new_vocab = run.vocab
    added = sorted(set(NEW) - set(OLD))
    assert new_vocab.chars == sorted(set(OLD) | set(NEW))  # the old text's symbols stay
    assert len(warnings) == 1
    assert warnings[0].startswith(f"extended the vocabulary by {len(added)} character(s)")
    p, q = run.model.params, old.params
    at = [new_vocab.chars.index(c) for c in old.vocab.chars]  # each old symbol's new id
    if embed:
        np.testing.assert_array_equal(p["encoder.weight"][at], q["encoder.weight"])
    else:
        np.testing.assert_array_equal(p["weight_ih_l0"][:, at], q["weight_ih_l0"])
    np.testing.assert_array_equal(p["decoder.weight"][at], q["decoder.weight"])
    np.testing.assert_array_equal(p["decoder.bias"][at], q["decoder.bias"])
    for name in ("weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        np.testing.assert_array_equal(p[name], q[name])
    # the new symbols hold what a new model of the new size draws with the run's seed
    fresh = CharRNN.create(
        ModelConfig(**{**old.config.to_dict(), "vocab_size": len(new_vocab), "dropout": 0.1}),
        np.random.Generator(np.random.PCG64(5)),
    )
    new_ids = [new_vocab.chars.index(c) for c in added]
    np.testing.assert_array_equal(
        p["decoder.weight"][new_ids], fresh.params["decoder.weight"][new_ids]
    )
    table = "encoder.weight" if embed else "weight_ih_l0"
    got = p[table][new_ids] if embed else p[table][:, new_ids]
    want = fresh.params[table][new_ids] if embed else fresh.params[table][:, new_ids]
    np.testing.assert_array_equal(got, want)
    # the corpus is read in the new vocabulary
    text = new_vocab.decode(np.asarray(run.batches._x[0, :20]))
    assert text == NEW[:20]


def test_text_lacking_symbols_keeps_the_vocabulary_and_says_nothing():
    path = base_checkpoint()
    (open("part.txt", "w")).write("the dog the fox\n" * 40)
    run, warnings = prepared(path, "part.txt")
    assert run.vocab == load(path).vocab and warnings == []


def test_cli_fine_tunes_says_one_line_and_resumes_exactly():
    path = base_checkpoint()
    common = [*TINY, "--hidden", "12", "--out", "ft", "--schedule", "constant", "--eval-every", "2"]
    r = train("new.txt", *common, "--steps", "4", "--init-from", path, "--name", "straight")
    assert r.exit_code == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if "extended the vocabulary" in x]
    assert len(lines) == 1 and "'€'" in lines[0] and " -> " in lines[0]
    ck = load("ft/straight-latest.npz")
    assert ck.vocab.chars == sorted(set(OLD) | set(NEW))
    # 2 steps, then --resume for 2 more: the parameters of 4 straight (the vocabulary stays)
    assert (
        train("new.txt", *common, "--steps", "2", "--init-from", path, "--name", "two").exit_code
        == 0
    )
    r = train("new.txt", *common, "--steps", "4", "--resume", "ft/two-latest.npz")
    assert r.exit_code == 0 and "extended" not in r.stderr, r.stderr
    two = load("ft/two-latest.npz")
    for k, v in ck.params.items():
        np.testing.assert_array_equal(two.params[k], v)


def test_resume_refuses_new_characters():
    path = base_checkpoint()
    err = one_line_error(train("new.txt", *TINY, "--steps", "5", "--resume", path), 1)
    assert "--init-from" in err and "'€'" in err


def test_fit_vocab_and_carry_weights_refuse_what_does_not_fit():
    chars = Vocab.from_text("abc\n")
    with pytest.raises(UsageError, match="--bytes"):
        finetune.fit_vocab(chars, Vocab.of_bytes(), resuming=False)
    with pytest.raises(CheckpointError, match="vocabulary mismatch"):
        finetune.fit_vocab(chars, Vocab.from_text("abcd"), resuming=True)
    assert finetune.fit_vocab(chars, Vocab.from_text("ab"), resuming=True) == (chars, None)
    cfg = ModelConfig(vocab_size=4, hidden=4, layers=1)
    old = CharRNN.create(cfg, np.random.default_rng(0))
    target = CharRNN.create(ModelConfig(vocab_size=4, hidden=4, layers=1), np.random.default_rng(1))
    with pytest.raises(ValueError):
        finetune.carry_weights(target, cfg, old.params, chars, Vocab.from_text("abd\n"))


def test_large_corpora_are_recoded_through_a_file(monkeypatch, tmp_path):
    old, new = Vocab.from_text("ab"), Vocab.from_text("abz")
    ids = np.random.default_rng(0).integers(0, 2, 1000).astype(np.uint8)
    small = finetune.remap_ids(ids, old, new)
    monkeypatch.setattr(finetune, "REMAP_IN_MEMORY", 10)
    monkeypatch.setattr(finetune, "_BLOCK", 64)
    (tmp_path / "spill").mkdir()
    spilled = finetune.remap_ids(ids, old, new, tmp_path / "spill")
    assert isinstance(spilled, np.memmap) and list((tmp_path / "spill").iterdir()) == []
    np.testing.assert_array_equal(spilled, small)
    assert new.decode(spilled[:10]) == old.decode(ids[:10])
