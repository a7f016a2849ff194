"""Byte models (`charrnn train --bytes`): any file trains; sample writes raw bytes; eval,
inspect and the API say so; the checkpoint records it."""

import json

import numpy as np
import pytest
from cli_asserts import ok, one_line_error
from test_evaluate import make_checkpoint
from typer.testing import CliRunner

import charrnn
from charrnn.checkpoint import Checkpoint, load, save
from charrnn.cli import app
from charrnn.config import ModelConfig, param_shapes
from charrnn.vocab import Vocab

# not UTF-8 (a lone \xff, latin-1 é), NUL bytes, and text: a file no character model reads
DATA = (b"GIF89a\x00\x01\xff\xfe" + "caf\xe9\n".encode("latin-1") + b"plain text line\n") * 40
TINY = ["--hidden", "12", "--layers", "1", "--batch", "4", "--seq", "8", "--threads", "1"]


@pytest.fixture(autouse=True)
def _texts(isolated):
    """In tmp_path, with a private corpus cache, and the texts the tests read."""
    tmp_path = isolated
    (tmp_path / "blob.bin").write_bytes(DATA)


def cli(*args, input=None):
    return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def byte_model(tmp_path) -> str:
    r = cli("train", "blob.bin", "--bytes", *TINY, "--steps", "3", "--out", "ck", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert "nats/byte" in r.stdout and "bits/byte" in r.stdout  # the summary counts bytes
    return "ck/blob-latest.npz"


def test_any_file_trains_and_the_checkpoint_says_bytes(byte_model):
    ck = load(byte_model)
    assert ck.vocab.is_bytes and len(ck.vocab) == 256 and ck.config.vocab_size == 256
    assert ck.meta["vocab_kind"] == "bytes" and ck.meta["corpus"]["encoding"] == "bytes"
    assert ck.meta["format_version"] == 2  # a charrnn that predates bytes refuses it
    assert ck.meta["corpus"]["bytes"] == len(DATA) == ck.meta["corpus"]["chars"]
    err = one_line_error(cli("train", "blob.bin", *TINY, "--steps", "1", "--out", "c2"), 1)
    assert "invalid UTF-8" in err  # the same file, as characters


def test_sample_writes_raw_bytes(byte_model):
    r = cli("sample", "-c", byte_model, "-n", "300", "--rng-seed", "3", "--seed", "GIF")
    assert r.exit_code == 0 and r.stdout_bytes.startswith(b"GIF")
    assert len(r.stdout_bytes) == 3 + 300  # one byte per symbol, whatever it is
    m = charrnn.load(byte_model)
    got = m.sample(seed="GIF", n=300, rng_seed=3)
    assert isinstance(got, bytes) and got == r.stdout_bytes[3:]
    assert m.sample(seed=b"\xff\xfe", n=5, rng_seed=1) == m.sample(
        seed=b"\xff\xfe", n=5, rng_seed=1
    )
    stdin_seed = cli("sample", "-c", byte_model, "-n", "10", "--rng-seed", "4", "--seed", "-",
                     input=b"\x00\xff")  # fmt: skip
    assert stdin_seed.exit_code == 0 and stdin_seed.stdout_bytes[:2] == b"\x00\xff"
    assert len(stdin_seed.stdout_bytes) == 12
    js = json.loads(cli("sample", "-c", byte_model, "-n", "10", "--rng-seed", "3", "--json").stdout)
    assert isinstance(js["text"], str)  # the bytes decoded as UTF-8, bad ones as U+FFFD


def test_eval_and_the_api_count_bytes(byte_model):
    rec = json.loads(ok(cli("eval", "blob.bin", "-c", byte_model, "--json")))
    assert rec["vocab_kind"] == "bytes" and rec["chars"] == len(DATA) - 1
    m = charrnn.load(byte_model)
    assert m.is_bytes and m.score(DATA) == pytest.approx(rec["nats_per_char"], rel=1e-9)
    table = ok(cli("eval", "blob.bin", "-c", byte_model))
    assert "bits/byte" in table and "bits/char" not in table
    # per line: undecodable bytes are symbols, never errors
    rows = [json.loads(x) for x in ok(cli("eval", "--per", "line", "blob.bin", "-c", byte_model,
                                           "--json")).splitlines()]  # fmt: skip
    assert len(rows) == DATA.count(b"\n") and rows[0]["skipped"] == 0
    assert rows[0]["chars"] == len(DATA.split(b"\n")[0]) + 1
    lines = DATA.split(b"\n")[:-1]
    np.testing.assert_allclose(m.score_lines(lines), [r["nats_per_char"] for r in rows], rtol=1e-6)


def test_inspect_shows_a_byte_model(byte_model):
    view = ok(cli("inspect", byte_model))
    assert "256 byte values" in view and "bits/byte" in view and "bits/char" not in view
    info = json.loads(ok(cli("inspect", byte_model, "--json")))
    assert info["vocab"]["kind"] == "bytes" and info["vocab"]["size"] == 256


def test_a_byte_run_resumes_as_bytes_and_refuses_mixing(byte_model, tmp_path):
    r = cli("train", *TINY, "--steps", "5", "--quiet", "--resume", byte_model)
    assert r.exit_code == 0, r.stderr
    assert load(byte_model).meta["step"] == 5 and load(byte_model).vocab.is_bytes
    (tmp_path / "t.txt").write_text("plain text\n" * 30)
    assert cli("train", "t.txt", *TINY, "--steps", "2", "--out", "c", "--quiet").exit_code == 0
    char_model = "c/t-latest.npz"
    err = one_line_error(cli("train", "t.txt", "--bytes", *TINY, "--init-from", char_model), 2)
    assert "character model" in err
    err = one_line_error(cli("eval", "t.txt", "-c", byte_model, "-c", char_model), 2)
    assert "compare models of one kind" in err
    err = one_line_error(cli("train", "t.txt", "--bytes", "--encoding", "latin-1", *TINY), 2)
    assert "--encoding" in err


def test_a_folder_of_binaries_trains_with_bytes(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(DATA)
    (tmp_path / "d" / "b.bin").write_bytes(bytes(range(256)) * 4)
    r = cli("train", "d", "--bytes", *TINY, "--steps", "2", "--out", "ck", "--quiet")
    assert r.exit_code == 0 and "warning" not in r.stderr, r.stderr
    assert load("ck/d-latest.npz").meta["corpus"]["files"] == 2


def test_old_checkpoints_are_characters_and_a_bad_kind_is_refused(tmp_path):
    vocab = Vocab.from_text("ab\n")
    cfg = ModelConfig(vocab_size=3, hidden=4, layers=1)
    params = {k: np.zeros(s, np.float32) for k, s in param_shapes(cfg).items()}
    save(tmp_path / "old.npz", Checkpoint(cfg, params, vocab, {"name": "old"}))
    ck = load(tmp_path / "old.npz")
    assert ck.vocab.kind == "chars" and "vocab_kind" not in ck.meta
    assert ck.meta["format_version"] == 1  # any charrnn reads a character model
    with np.load(tmp_path / "old.npz", allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    meta = json.loads(str(members["meta"]))
    members["meta"] = np.array(json.dumps({**meta, "vocab_kind": "words"}))
    np.savez(tmp_path / "bad.npz", **members)
    with pytest.raises(charrnn.CheckpointError, match="vocab_kind"):
        load(tmp_path / "bad.npz")
    with pytest.raises(charrnn.CharrnnError, match="256 byte values"):
        Vocab(np.arange(10), kind="bytes")
    make_checkpoint(tmp_path / "m.npz")
    assert not charrnn.load(tmp_path / "m.npz").is_bytes
