"""Odd corpora through `charrnn train`, and `--help` with an example on every command."""

import re
import subprocess
import sys

import numpy as np
import pytest
from cli_asserts import one_line_error
from typer.testing import CliRunner

from charrnn.checkpoint import load
from charrnn.cli import app

TINY = ["--hidden", "8", "--layers", "1", "--batch", "2", "--seq", "5", "--threads", "1"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))


def train(tmp_path, data: bytes | None, *args: str, stdin: bytes | None = None):
    argv = ["train", *TINY, "--steps", "2", "--quiet", "--out", str(tmp_path / "ck")]
    if data is not None:
        corpus = tmp_path / "c.txt"
        corpus.write_bytes(data)
        argv.append(str(corpus))
    return CliRunner().invoke(app, [*argv, *args], input=stdin)


def ok(r):
    """The latest checkpoint a successful run names in its summary."""
    assert r.exit_code == 0, r.stderr
    m = re.search(r"latest checkpoint: (\S+)", r.stdout)
    assert m, r.stdout
    return load(m.group(1))


def test_only_newlines_is_an_error(tmp_path):
    assert "single distinct character" in one_line_error(train(tmp_path, b"\n" * 500), 1)


def test_single_distinct_character_is_an_error(tmp_path):
    assert "nothing to learn" in one_line_error(train(tmp_path, b"a" * 500), 1)


def test_shorter_than_one_batch_shrinks_with_a_warning(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world, hello there!\n" * 3)
    argv = [
        "train",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--steps",
        "2",
        "--quiet",
        "--out",
        str(tmp_path / "ck"),
        str(corpus),
    ]
    r = CliRunner().invoke(app, argv)
    assert "warning" in r.stderr
    tc = ok(r).meta["train_config"]
    assert tc["batch"] * tc["seq"] < 78  # the default 50 x 100 did not fit


def test_invalid_utf8_strict_names_file_and_offset(tmp_path):
    err = one_line_error(train(tmp_path, b"good text here\n" * 5 + b"\xff\xfe bad"), 1)
    assert "c.txt" in err and "byte 75" in err and "--errors replace" in err


def test_invalid_utf8_replace_trains(tmp_path):
    ck = ok(train(tmp_path, b"good text here\n" * 5 + b"\xff bad", "--errors", "replace"))
    assert 0xFFFD in ck.vocab.codepoints


def test_bom_is_stripped_crlf_and_nul_kept(tmp_path):
    ck = ok(train(tmp_path, b"\xef\xbb\xbf" + b"line one\r\nline\x00two\r\n" * 10))
    cps = set(ck.vocab.codepoints.tolist())
    assert 0xFEFF not in cps and {0x0D, 0x0A, 0x00} <= cps


def test_cjk_corpus_with_ten_thousand_symbols_trains_and_samples_utf8(tmp_path):
    rng = np.random.default_rng(0)
    chars = [chr(c) for c in rng.permutation(np.arange(0x4E00, 0x4E00 + 10_500))]
    text = "".join(chars * 2).encode("utf-8")
    ck = ok(train(tmp_path, text))
    assert len(ck.vocab) == 10_500
    r = CliRunner().invoke(
        app,
        [
            "sample",
            "--checkpoint",
            str(tmp_path / "ck" / "c-latest.npz"),
            "-n",
            "50",
            "--rng-seed",
            "1",
        ],
    )
    assert r.exit_code == 0, r.stderr
    out = r.stdout_bytes.decode("utf-8")  # strict: valid UTF-8 or this raises
    assert len(out) >= 50 and all(ord(c) >= 0x4E00 or c == "\n" for c in out)


def test_empty_stdin_is_an_error(tmp_path):
    assert "empty" in one_line_error(train(tmp_path, None, "-", stdin=b""), 1)


def test_changed_corpus_is_reencoded(tmp_path):
    first = ok(train(tmp_path, b"abcabc abc\n" * 20))
    second = ok(train(tmp_path, b"xyzxyz xyz\n" * 20, "--force"))
    assert first.meta["corpus"]["sha256"] != second.meta["corpus"]["sha256"]
    assert set(second.vocab.chars) == set("xyz \n")


@pytest.mark.parametrize("command", ["train", "sample", "eval", "inspect"])
def test_every_command_has_help_with_an_example(command):
    r = CliRunner().invoke(app, [command, "--help"])
    assert r.exit_code == 0
    assert f"charrnn {command}" in r.stdout  # an example line of the command itself


def test_top_level_help_lists_commands():
    r = subprocess.run([sys.executable, "-m", "charrnn", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for command in ("train", "sample", "eval", "inspect"):
        assert command in r.stdout


@pytest.mark.parametrize("command", [["sample", "-n", "5"], ["eval"], ["inspect"]])
def test_no_checkpoint_anywhere_says_so_alike(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    err = one_line_error(CliRunner().invoke(app, command), 1)
    assert err == (
        "charrnn: error: no checkpoint in checkpoints: train one with `charrnn train`, "
        "or pass --checkpoint PATH"
    )


def test_a_folder_stands_for_its_newest_checkpoint(tmp_path):
    ok(train(tmp_path, b"abcab cabba " * 40))
    folder = str(tmp_path / "ck")
    text = tmp_path / "t.txt"
    text.write_text("abc cab")
    runner = CliRunner()
    for argv in (
        ["sample", "-c", folder, "-n", "5", "--seed", "a"],
        ["eval", str(text), "-c", folder, "--json"],
        ["inspect", folder, "--json"],
    ):
        r = runner.invoke(app, argv)
        assert r.exit_code == 0, (argv, r.stderr)
        assert "c-best.npz" in r.stdout or argv[0] == "sample", r.stdout
