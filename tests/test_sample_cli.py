"""`charrnn sample` driven through the CLI, with checkpoints written by charrnn.checkpoint.save."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_asserts import ok, one_line_error
from typer.testing import CliRunner

from charrnn import sample as S
from charrnn.checkpoint import Checkpoint, save
from charrnn.cli import app
from charrnn.config import ModelConfig, param_shapes
from charrnn.vocab import Vocab

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


def write_checkpoint(path: Path, text: str = TEXT, cell="lstm", hidden=16, scale=0.5, nan=False):
    vocab = Vocab.from_text(text)
    cfg = ModelConfig(cell=cell, vocab_size=len(vocab), hidden=hidden, layers=2)
    rng = np.random.default_rng(0)
    params = {
        k: (scale * rng.standard_normal(s)).astype(np.float32) for k, s in param_shapes(cfg).items()
    }
    if nan:
        params["weight_hh_l0"][1, 2] = np.nan
    save(path, Checkpoint(cfg, params, vocab, {"name": path.stem}))
    return path


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return write_checkpoint(tmp_path / "run-best.npz")


def run(*args: str, input=None):
    return CliRunner().invoke(app, ["sample", *args], input=input, catch_exceptions=False)


def test_json_parses_back_and_repeats_with_the_rng_seed(ckpt):
    out = json.loads(
        ok(run("-c", str(ckpt), "-n", "80", "--seed", "All:", "--json", "--rng-seed", "3"))
    )
    assert out["checkpoint"] == str(ckpt)
    assert out["text"].startswith("All:") and len(out["text"]) == 84
    assert out["settings"]["rng_seed"] == 3 and out["settings"]["length"] == 80
    again = json.loads(
        ok(run("-c", str(ckpt), "-n", "80", "--seed", "All:", "--json", "--rng-seed", "3"))
    )
    assert again == out
    # the streamed text is the same text
    assert ok(run("-c", str(ckpt), "-n", "80", "--seed", "All:", "--rng-seed", "3")) == out["text"]
    # without --rng-seed a seed is chosen and reported; it reproduces the text
    free = json.loads(ok(run("-c", str(ckpt), "-n", "80", "--json")))
    seed = str(free["settings"]["rng_seed"])
    assert json.loads(ok(run("-c", str(ckpt), "-n", "80", "--json", "--rng-seed", seed))) == free


def test_text_equals_the_library_generation(ckpt):
    from charrnn.checkpoint import load
    from charrnn.step import prepare

    c = load(ckpt)
    w = prepare(c.config, c.params)
    rng = np.random.default_rng(12)
    prime, _ = S.prime_ids(c.vocab, "hear", num_samples=1)
    want = S.sample_texts(w, c.vocab, prime, S.SampleOptions(length=60, temperature=0.7), rng)
    got = ok(run("-c", str(ckpt), "-n", "60", "-t", "0.7", "--seed", "hear", "--rng-seed", "12"))
    assert got == "hear" + want[0]


def test_finds_the_newest_run_in_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_checkpoint(tmp_path / "checkpoints" / "old-best.npz", text="ab")
    os.utime(tmp_path / "checkpoints" / "old-best.npz", (1, 1))
    write_checkpoint(tmp_path / "checkpoints" / "new-best.npz", text="xyz\n")
    out = json.loads(ok(run("-n", "50", "--json")))
    assert out["checkpoint"] == str(Path("checkpoints") / "new-best.npz")
    assert set(out["text"]) <= set("xyz\n")
    # a folder given to --checkpoint: the same rule inside it
    out = json.loads(ok(run("-c", str(tmp_path / "checkpoints"), "-n", "5", "--json")))
    assert out["checkpoint"] == str(tmp_path / "checkpoints" / "new-best.npz")


def test_num_samples_and_separator(ckpt):
    out = ok(run("-c", str(ckpt), "-n", "40", "--num-samples", "3", "--seed", "All:",
                 "--separator", "\\n=====\\n", "--rng-seed", "1"))  # fmt: skip
    parts = out.split("\n=====\n")
    assert len(parts) == 3 and all(p.startswith("All:") and len(p) == 44 for p in parts)
    assert len(set(parts)) == 3
    js = json.loads(ok(run("-c", str(ckpt), "-n", "40", "--num-samples", "3", "--seed", "All:",
                           "--rng-seed", "1", "--json")))  # fmt: skip
    assert js["text"] == parts
    # default: one blank line between samples
    plain = ok(run("-c", str(ckpt), "-n", "40", "--num-samples", "3", "--seed", "All:",
                   "--rng-seed", "1"))  # fmt: skip
    for p in parts:
        assert p in plain
    assert plain.count("\n\n") >= 2


def test_seed_echo_no_echo_and_stdin(ckpt):
    echoed = ok(run("-c", str(ckpt), "-n", "30", "--seed", "Speak", "--rng-seed", "5"))
    quiet = ok(
        run("-c", str(ckpt), "-n", "30", "--seed", "Speak", "--rng-seed", "5", "--no-echo-seed")
    )
    assert echoed == "Speak" + quiet and len(quiet) == 30
    piped = ok(run("-c", str(ckpt), "-n", "30", "--seed", "-", "--rng-seed", "5", input="Speak"))
    assert piped == echoed
    assert ok(run("-c", str(ckpt), "-n", "0", "--seed", "Speak")) == "Speak"


def test_stop_string_ends_the_sample(ckpt):
    free = ok(run("-c", str(ckpt), "-n", "200", "--rng-seed", "8", "--no-echo-seed"))
    stop = free[50:52]
    cut = ok(run("-c", str(ckpt), "-n", "200", "--rng-seed", "8", "--no-echo-seed", "--stop", stop))
    assert cut == free[: free.find(stop) + 2]


def test_unknown_seed_characters(ckpt):
    err = one_line_error(run("-c", str(ckpt), "--seed", "Zebra ☃"), 1)
    assert "'Z'" in err and "'☃'" in err and "--unk skip" in err
    out = ok(run("-c", str(ckpt), "-n", "10", "--seed", "Zebra ☃", "--unk", "skip"))
    assert out.startswith("Zebra ☃") and len(out) == 17


def test_unicode_output_is_valid_utf8(tmp_path):
    path = write_checkpoint(tmp_path / "cjk-best.npz", text="春眠不覺曉🌸🐦\n")
    r = CliRunner().invoke(app, ["sample", "-c", str(path), "-n", "300", "--seed", "春"])
    assert r.exit_code == 0
    text = r.stdout_bytes.decode("utf-8")  # strict: raises on a split character
    assert len(text) == 301 and set(text) <= set("春眠不覺曉🌸🐦\n")


def test_keyboard_interrupt_exits_130_quietly(ckpt, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(S, "generate", interrupted)
    r = run("-c", str(ckpt), "-n", "10")
    assert r.exit_code == 130 and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args,code,words",
    [
        (["-t", "-1"], 2, "--temperature"),
        (["--top-p", "0"], 2, "--top-p"),
        (["--top-p", "1.5"], 2, "--top-p"),
        (["--top-k", "0"], 2, "--top-k"),
        (["-n", "-1"], 2, "--length"),
        (["--num-samples", "0"], 2, "--num-samples"),
        (["--unk", "maybe"], 2, "--unk"),
        (["--seed", "a", "--seed-random"], 2, "--seed-random"),
        (["--rng-seed", "-3"], 2, "--rng-seed"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(ckpt, args, code, words):
    assert words in one_line_error(run("-c", str(ckpt), *args), code)


def test_bad_checkpoints_give_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "no checkpoint" in one_line_error(run("-n", "5"), 1)
    (tmp_path / "checkpoints").mkdir()
    assert "no checkpoint" in one_line_error(run("-n", "5"), 1)
    junk = tmp_path / "junk.npz"
    junk.write_text("not a checkpoint")
    assert "junk.npz" in one_line_error(run("-c", str(junk)), 1)
    assert "does not exist" in one_line_error(run("-c", str(tmp_path / "nope.npz")), 1)
    nan = write_checkpoint(tmp_path / "nan-best.npz", nan=True)
    assert "NaN" in one_line_error(run("-c", str(nan)), 1)


def test_help_has_an_example():
    r = CliRunner().invoke(app, ["sample", "--help"])
    assert r.exit_code == 0 and "charrnn sample -n 300" in r.stdout


def test_head_closing_the_pipe_exits_0_at_once(ckpt):
    """`charrnn sample -n 1000000 | head -c 100`: a real process, a real pipe."""
    p = subprocess.Popen(
        [sys.executable, "-m", "charrnn", "sample", "-c", str(ckpt), "-n", "1000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        head = p.stdout.read(100)
        p.stdout.close()
        rc = p.wait(timeout=60)
    finally:
        p.kill()
    err = p.stderr.read().decode()
    p.stderr.close()
    assert len(head) == 100 and rc == 0, err
    assert "Traceback" not in err and "Error" not in err, err
