"""The Python API (charrnn.load, Model.sample/score/score_lines/surprisal): the CLI's results,
plain values and arrays, the project's own exceptions."""

import json
import math

import numpy as np
import pytest
from cli_asserts import ok
from test_evaluate import TEXT, make_checkpoint, reference
from typer.testing import CliRunner

import charrnn
from charrnn.cli import app
from charrnn.vocab import Vocab

pytestmark = pytest.mark.usefixtures("isolated")  # in tmp_path, with a private corpus cache


@pytest.fixture
def model(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "m.npz", meta={"name": "shk"})
    return charrnn.load(tmp_path / "m.npz", threads=1), params, cfg


def cli(*args, input=None) -> str:
    return ok(CliRunner().invoke(app, list(args), input=input, catch_exceptions=False))


def test_load_describes_the_model(model, tmp_path):
    m, _, cfg = model
    assert m.name == "shk" and m.path == tmp_path / "m.npz" and not m.is_bytes
    assert m.config["hidden"] == cfg.hidden and m.vocab == sorted(set(TEXT))
    assert "shk" in repr(m) and isinstance(m.meta, dict)
    make_checkpoint(tmp_path / "ck" / "shk-best.npz")
    assert charrnn.load(tmp_path / "ck").path == tmp_path / "ck" / "shk-best.npz"  # a folder


def test_sample_is_the_clis_text(model):
    m, _, _ = model
    text = m.sample(seed="All:", n=300, temperature=0.8, rng_seed=7)
    assert isinstance(text, str) and len(text) == 300
    printed = cli("sample", "-c", "m.npz", "--seed", "All:", "-n", "300", "-t", "0.8",
                  "--rng-seed", "7", "--no-echo-seed")  # fmt: skip
    assert text == printed
    assert m.sample(seed="All:", n=300, temperature=0.8, rng_seed=7) == text  # repeatable
    assert m.sample(n=50, rng_seed=1) != m.sample(n=50, rng_seed=2)
    stopped = m.sample(n=2000, rng_seed=3, stop="\n")
    assert stopped.endswith("\n") and stopped.count("\n") == 1
    assert m.sample(n=0) == ""


def test_score_is_the_clis_figure_and_surprisal_its_parts(model, tmp_path):
    m, params, cfg = model
    (tmp_path / "t.txt").write_text(TEXT)
    r = json.loads(cli("eval", "t.txt", "-c", "m.npz", "--json"))
    score = m.score(TEXT)
    assert isinstance(score, float) and score == pytest.approx(r["nats_per_char"], rel=1e-9)
    s = m.surprisal(TEXT)
    nll, _ = reference(params, cfg, Vocab.from_text(TEXT).encode(TEXT).tolist())
    assert s.shape == (len(TEXT) - 1,) and s.dtype == np.float64
    np.testing.assert_allclose(s, nll, rtol=1e-5, atol=1e-6)
    assert m.score(TEXT.encode()) == pytest.approx(score, rel=1e-12)  # bytes are UTF-8


def test_score_lines_is_the_clis_per_line(model, tmp_path):
    m, params, cfg = model
    lines = ["First Citizen:", "", "All:\n", "Speak, speak."]
    got = m.score_lines(lines)
    assert isinstance(got, np.ndarray) and got.shape == (4,) and got.dtype == np.float64
    (tmp_path / "t.txt").write_text("".join(x if x.endswith("\n") else x + "\n" for x in lines))
    rows = [json.loads(x) for x in cli("eval", "--per", "line", "t.txt", "-c", "m.npz", "--json")
            .splitlines()]  # fmt: skip
    np.testing.assert_allclose(got, [r["nats_per_char"] for r in rows], rtol=1e-9)
    ids = Vocab.from_text(TEXT).encode("\nAll:\n").tolist()
    assert got[2] == pytest.approx(reference(params, cfg, ids)[0].mean(), rel=1e-5)
    assert m.score_lines([]).shape == (0,)
    # alone or beside others: the same to float32 precision (the batch changes the roundings)
    assert m.score_lines(iter(["All:"]))[0] == pytest.approx(got[2], rel=1e-7)
    assert m.score_lines(["All: é"], unk="skip")[0] == pytest.approx(
        m.score_lines(["All: "])[0], rel=1e-12
    )


def test_errors_are_the_projects_own(model, tmp_path):
    m, _, _ = model
    with pytest.raises(charrnn.CheckpointError, match="no checkpoint"):
        charrnn.load(tmp_path / "nope.npz")
    with pytest.raises(charrnn.CharrnnError, match="not in shk's vocabulary"):
        m.score("café")
    with pytest.raises(charrnn.CharrnnError, match="line 2: invalid UTF-8"):
        m.score_lines([b"All:", b"\xff"])
    with pytest.raises(charrnn.CharrnnError, match="at least 2"):
        m.score("A")
    with pytest.raises(charrnn.UsageError, match="list of lines"):
        m.score_lines("All:\nSpeak.")
    with pytest.raises(charrnn.UsageError, match="line 2 is a int"):
        m.score_lines(["All:", 3])
    with pytest.raises(charrnn.UsageError, match="temperature"):
        m.sample(temperature=-1)
    with pytest.raises(charrnn.UsageError, match="n must be"):
        m.sample(n=-5)
    with pytest.raises(charrnn.UsageError, match="unk"):
        m.score("All:", unk="keep")
    with pytest.raises(charrnn.UsageError, match="threads"):
        charrnn.load(tmp_path / "m.npz", threads=-1)
    with pytest.raises(charrnn.CharrnnError, match="vocabulary"):
        m.sample(seed="ß")
    assert issubclass(charrnn.UsageError, charrnn.CharrnnError)


def test_bits_are_nats_over_ln2(model):
    m, _, _ = model
    assert m.score(TEXT) / math.log(2) > m.score(TEXT)
