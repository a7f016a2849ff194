"""`charrnn eval --per line|doc` and the engine under it (charrnn/perline.py, charrnn/units.py),
against the naive float64 reference of test_evaluate: a unit U is scored as "\\n" + U + "\\n" from
the zero state, every character after the first predicted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_asserts import ok, one_line_error
from test_evaluate import TEXT, make_checkpoint, reference, run
from typer.testing import CliRunner

from charrnn import perline
from charrnn.cli import app
from charrnn.model import CharRNN
from charrnn.units import read_units
from charrnn.vocab import Vocab

ROOT = Path(__file__).resolve().parent.parent
LINES = ["First Citizen:", "Before we proceed any further, hear me speak.", "", "All:", "Speak."]


pytestmark = pytest.mark.usefixtures("isolated")  # in tmp_path, with a private corpus cache


def unit_nats(params, cfg, unit: str, vocab_text: str = TEXT) -> np.ndarray:
    """Reference nats of each prediction of `unit` scored as a line: (len(unit) + 1,)."""
    ids = Vocab.from_text(vocab_text).encode("\n" + unit + "\n").tolist()
    nll, _ = reference(params, cfg, ids)
    return nll


def tsv(out: str) -> tuple[list[str], list[list[str]]]:
    lines = out.splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def stream_error(result, code: int) -> str:
    """A failure met while rows stream: the exit code and one line on stderr, no traceback (the
    header and the rows before the bad unit are on stdout)."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    err = result.stderr.strip()
    assert err.startswith("charrnn: error:") and "\n" not in err, err
    return err


def json_rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


# --------------------------------------------------------------------------------- the engine


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_score_sequences_matches_the_reference_for_every_length(tmp_path, cell, threads,
                                                                monkeypatch):  # fmt: skip
    params, cfg = make_checkpoint(tmp_path / "m.npz", cell=cell, scale=0.3)
    model = CharRNN.from_params(cfg, params).copy(threads, frozen=True)
    vocab = Vocab.from_text(TEXT)
    rng = np.random.default_rng(0)
    texts = [TEXT[: int(n)] for n in rng.integers(0, len(TEXT), 150)] + ["", TEXT * 3]
    seqs = [vocab.encode("\n" + t + "\n") for t in texts]
    monkeypatch.setattr(perline, "GROUP_ROWS", 20)  # several groups
    monkeypatch.setattr(perline, "LONG", 300)  # the longest go through score_ids
    got = perline.score_sequences(model, seqs)
    for t, s, g in zip(texts, seqs, got, strict=True):
        nll, _ = reference(params, cfg, s.tolist())
        assert g == pytest.approx(nll.sum(), rel=2e-5), t


def test_score_sequences_refuses_a_sequence_with_nothing_to_predict(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "m.npz")
    with pytest.raises(ValueError):
        perline.score_sequences(CharRNN.from_params(cfg, params), [np.array([1, 2]), np.array([3])])


def test_units_are_lines_paragraphs_or_files(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfone\ntwo\n \n\nthree\r\nfour")
    (tmp_path / "b.txt").write_bytes(b"whole\nfile\n")
    lines = list(read_units(["a.txt"], "line"))
    assert [(u.line, u.raw) for u in lines] == [
        (1, b"one"), (2, b"two"), (3, b" "), (4, b""), (5, b"three\r"), (6, b"four")
    ]  # fmt: skip
    assert lines[-1].offset == (tmp_path / "a.txt").stat().st_size
    docs = list(read_units(["a.txt"], "doc"))
    assert [(u.line, u.raw) for u in docs] == [(1, b"one\ntwo"), (5, b"three\r\nfour")]
    files = list(read_units(["a.txt", "b.txt"], "doc"))
    assert [(u.source, u.raw) for u in files] == [
        ("a.txt", b"one\ntwo\n \n\nthree\r\nfour"), ("b.txt", b"whole\nfile")
    ]  # fmt: skip
    assert list(read_units(["a.txt"], "line", strip_bom=False))[0].raw == b"\xef\xbb\xbfone"


# --------------------------------------------------------------------------------- the CLI


def test_per_line_gives_one_row_per_line_in_order(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_text("\n".join(LINES))  # no newline after the last line
    header, rows = tsv(ok(run("--per", "line", "t.txt", "-c", "m.npz")))
    assert header == ["line", "chars", "nats_per_char", "bits_per_char", "text"]
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [r[-1] for r in rows] == LINES
    for line, r in zip(LINES, rows, strict=True):
        nll = unit_nats(params, cfg, line)
        assert int(r[1]) == len(line) + 1 == nll.size  # the closing newline is predicted too
        assert float(r[2]) == pytest.approx(nll.mean(), rel=1e-5)
        assert float(r[3]) == pytest.approx(nll.mean() / np.log(2), rel=1e-5)


def test_a_line_scores_the_same_wherever_it_stands(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "a.txt").write_text("All:\nSpeak.\n")
    (tmp_path / "b.txt").write_text("Speak.\nFirst Citizen:\nAll:\n")
    a = json_rows(ok(run("--per", "line", "a.txt", "-c", "m.npz", "--json")))
    b = json_rows(ok(run("--per", "line", "b.txt", "-c", "m.npz", "--json")))
    assert a[0]["text"] == b[2]["text"] == "All:"
    assert a[0]["nats_per_char"] == pytest.approx(b[2]["nats_per_char"], rel=1e-6)
    assert a[1]["nats_per_char"] == pytest.approx(b[0]["nats_per_char"], rel=1e-6)


def test_per_doc_scores_paragraphs_and_json_rows_carry_everything(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_text("\n\nFirst Citizen:\nAll:\n\n   \nSpeak.\n")
    rows = json_rows(ok(run("--per", "doc", "t.txt", "-c", "m.npz", "--json")))
    assert [(r["line"], r["text"]) for r in rows] == [(3, "First Citizen:\nAll:"), (7, "Speak.")]
    for r in rows:
        nll = unit_nats(params, cfg, r["text"])
        assert r["chars"] == nll.size and r["skipped"] == 0 and r["file"] == "t.txt"
        assert r["nats_per_char"] == pytest.approx(nll.mean(), rel=1e-5)
        assert r["bits_per_char"] == pytest.approx(nll.mean() / np.log(2), rel=1e-5)


def test_several_files_per_doc_are_one_row_each(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "a.txt").write_text("First Citizen:\n\nAll:\n")
    (tmp_path / "b.txt").write_text("Speak.")
    header, rows = tsv(ok(run("--per", "doc", "a.txt", "b.txt", "-c", "m.npz")))
    assert header == ["file", "line", "chars", "nats_per_char", "bits_per_char"]  # no text
    assert [r[0] for r in rows] == ["a.txt", "b.txt"]
    nll = unit_nats(params, cfg, "First Citizen:\n\nAll:")  # the whole file, one final newline
    assert float(rows[0][3]) == pytest.approx(nll.mean(), rel=1e-5)
    header, rows = tsv(ok(run("--per", "line", "a.txt", "b.txt", "-c", "m.npz")))
    assert header[0] == "file" and [(r[0], r[1]) for r in rows] == [
        ("a.txt", "1"), ("a.txt", "2"), ("a.txt", "3"), ("b.txt", "1")
    ]  # fmt: skip


def test_stdin_per_line(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    rows = json_rows(ok(run("--per", "line", "-", "-c", "m.npz", "--json", input="All:\n\n")))
    assert [(r["file"], r["line"], r["text"]) for r in rows] == [
        ("<stdin>", 1, "All:"), ("<stdin>", 2, "")
    ]  # fmt: skip


def test_tsv_escapes_tabs_and_backslashes_in_the_text(tmp_path):
    text = "a\tb\\c\r"
    make_checkpoint(tmp_path / "m.npz", TEXT + text)
    (tmp_path / "t.txt").write_text(text + "\n")
    _, rows = tsv(ok(run("--per", "line", "t.txt", "-c", "m.npz")))
    assert len(rows) == 1 and rows[0][-1] == "a\\tb\\\\c\\r"


def test_several_models_give_each_score_and_the_best(tmp_path):
    prose = make_checkpoint(tmp_path / "prose.npz", seed=1, meta={"name": "prose"})
    code = make_checkpoint(tmp_path / "code.npz", seed=2, meta={"name": "code"})
    (tmp_path / "t.txt").write_text("\n".join(LINES) + "\n")
    argv = ["--per", "line", "t.txt", "-c", "prose.npz", "-c", "code.npz"]
    header, rows = tsv(ok(run(*argv)))
    assert header == ["line", "chars", "prose", "code", "best", "text"]
    records = json_rows(ok(run(*argv, "--json")))
    for line, r, rec in zip(LINES, rows, records, strict=True):
        bits = {}
        for name, (params, cfg) in (("prose", prose), ("code", code)):
            bits[name] = unit_nats(params, cfg, line).mean() / np.log(2)
            assert rec["scores"][name]["bits_per_char"] == pytest.approx(bits[name], rel=1e-5)
        best = min(bits, key=bits.get)
        assert r[4] == rec["best"] == best and rec["text"] == line
        assert float(r[2]) == pytest.approx(bits["prose"], rel=1e-5)


def test_model_names_fall_back_to_paths_when_they_clash(tmp_path):
    make_checkpoint(tmp_path / "a" / "m.npz", meta={"name": "same"})
    make_checkpoint(tmp_path / "b" / "m.npz", meta={"name": "same"}, seed=3)
    (tmp_path / "t.txt").write_text("All:\n")
    header, _ = tsv(ok(run("--per", "line", "t.txt", "-c", "a/m.npz", "-c", "b/m.npz")))
    assert header[2:4] == ["a/m.npz", "b/m.npz"]
    err = one_line_error(run("--per", "line", "t.txt", "-c", "a/m.npz", "-c", "a/m.npz"), 2)
    assert "twice" in err


def test_unknown_characters_stop_at_their_line_after_the_rows_before(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_text("All:\ncafé (x)\n")
    r = run("--per", "line", "t.txt", "-c", "m.npz")
    err = stream_error(r, 1)
    assert "t.txt:2" in err and "'é'" in err and "--unk skip" in err
    assert [row[-1] for row in tsv(r.stdout)[1]] == ["All:"]  # the row before it is out


def test_unk_skip_counts_unknown_characters_and_bad_bytes(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_bytes("All: café".encode() + b" \xff\xfe?\n")
    err = stream_error(run("--per", "line", "t.txt", "-c", "m.npz"), 1)
    assert "t.txt:1" in err and "invalid UTF-8 at byte 11" in err
    r = json_rows(ok(run("--per", "line", "t.txt", "-c", "m.npz", "--unk", "skip", "--json")))[0]
    assert r["skipped"] == 3  # é and two bad bytes
    assert r["chars"] == len("All: caf ?") + 3 + 1
    nll = unit_nats(params, cfg, "All: caf ?")
    assert r["nats_per_char"] == pytest.approx(nll.mean(), rel=1e-5)
    header, _ = tsv(ok(run("--per", "line", "t.txt", "-c", "m.npz", "--unk", "skip")))
    assert header[:3] == ["line", "chars", "skipped"]


def test_a_model_without_a_newline_cannot_score_lines(tmp_path):
    make_checkpoint(tmp_path / "m.npz", "abc def")
    (tmp_path / "t.txt").write_text("abc\n")
    err = stream_error(run("--per", "line", "t.txt", "-c", "m.npz"), 1)
    assert "no newline" in err and "without --per" in err


@pytest.mark.parametrize(
    "args, words",
    [
        (["--per", "word", "t.txt"], "line or doc"),
        (["--per", "line"], "FILE"),
        (["--per", "line", "t.txt", "--show"], "--show"),
        (["--per", "line", "t.txt", "--streams", "2"], "--streams"),
        (["--per", "line", "t.txt", "--unk", "keep"], "--unk"),
        (["--per", "line", "t.txt", "-", "-"], "once"),
        (["t.txt", "t.txt"], "--per doc"),
    ],
)
def test_bad_per_options_are_usage_errors(tmp_path, args, words):
    make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_text("All:\n")
    assert words in one_line_error(run(*args, "-c", "m.npz"), 2)


def test_missing_and_folder_sources_are_named_before_any_row(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_text("All:\n")
    (tmp_path / "d").mkdir()
    assert "nope.txt" in one_line_error(run("--per", "line", "t.txt", "nope.txt", "-c", "m.npz"), 1)
    assert "d: no text files" in one_line_error(
        run("--per", "line", "t.txt", "d", "-c", "m.npz"), 1
    )


def test_the_table_on_a_terminal_cuts_the_text_to_the_width(tmp_path, monkeypatch, capsys):
    import shutil

    from charrnn.commands import eval_per
    from charrnn.perline import Row, Scored
    from charrnn.units import Unit

    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a: os.terminal_size((60, 20)))
    layout = eval_per.Layout(["prose", "code"], files=False, skipped=False, text=True)
    w = eval_per.TableWriter(layout)
    w.start()
    long = "x\ty" * 40
    w.row(Row(Unit("t", 12, long.encode(), 0), 81, [Scored(81.0, 81, 0), Scored(40.0, 81, 0)]))
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["line", "chars", "prose", "code", "best", "text"]
    assert len(out[1]) <= 60 and out[1].endswith("…") and "x\\ty" in out[1]
    cells = out[1].split()
    assert cells[:5] == ["12", "81", "1.4427", "0.7124", "code"]


def test_rows_stream_before_the_input_ends(tmp_path):
    """A pipe that sends one line and waits: its row comes out before the pipe is closed."""
    make_checkpoint(tmp_path / "m.npz")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "charrnn", "eval", "--per", "line", "-", "-c", "m.npz", "--json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        proc.stdin.write(b"All:\n")
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())  # blocks until the row is out
        assert first["text"] == "All:" and proc.poll() is None  # still waiting for input
        proc.stdin.write(b"Speak.\n")
        proc.stdin.close()
        rest = proc.stdout.read().decode().splitlines()
        assert proc.wait(60) == 0 and [json.loads(r)["text"] for r in rest] == ["Speak."]
    finally:
        proc.kill()
        proc.wait()


def test_per_line_through_the_runner_reads_stdin_once(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    r = CliRunner().invoke(
        app, ["eval", "--per", "line", "-", "-c", "m.npz"], input="", catch_exceptions=False
    )
    header, rows = tsv(ok(r))
    assert header[0] == "line" and rows == []  # an empty input has no lines


def test_a_folder_is_one_document_per_text_file(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_text("All:\n")
    (tmp_path / "d" / "sub" / "a.txt").write_text("Speak.\n")
    (tmp_path / "d" / "logo.png").write_bytes(b"\x89PNG\x00\x00")
    r = run("--per", "doc", "d", "-c", "m.npz")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count("\n") == 1 and "skipped 1 file(s)" in r.stderr and "logo.png" in r.stderr
    header, rows = tsv(r.stdout)
    assert header[0] == "file" and [row[0] for row in rows] == ["d/b.txt", "d/sub/a.txt"]


def test_a_file_is_cut_into_the_same_batches_on_every_run(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    rng = np.random.default_rng(1)
    letters = sorted(set(TEXT) - {"\n"})
    lines = ["".join(rng.choice(letters, int(n))) for n in rng.integers(0, 80, 300)]
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
    first = ok(run("--per", "line", "t.txt", "-c", "m.npz", "--json"))
    assert len(first.splitlines()) == 300
    assert ok(run("--per", "line", "t.txt", "-c", "m.npz", "--json")) == first


def test_a_folder_scored_whole_points_at_per_doc(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "d").mkdir()
    assert "--per doc" in one_line_error(run("d", "-c", "m.npz"), 2)


def test_files_are_batched_the_same_way_every_time(monkeypatch):
    from charrnn.units import Unit

    def units(n, size=3):
        return (Unit("f", i + 1, b"x" * size, 0) for i in range(n))

    sizes = [len(b) for b in perline.stream_batches(units(100), full=True)]
    assert sizes == [16, 32, 52]
    monkeypatch.setattr(perline, "MAX_BATCH_BYTES", 10)
    assert [len(b) for b in perline.stream_batches(units(7), full=True)] == [4, 3]
    streamed = list(perline.stream_batches(units(100)))  # as they come: any cut, same order
    assert [u.line for b in streamed for u in b] == list(range(1, 101))
