"""No traceback, ever, outside --debug: unexpected errors, resources running out, closed standard
streams, a full stdout, signals at awkward moments (charrnn/failsafe.py)."""

import errno
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from cli_asserts import one_line_error
from test_sample_cli import write_checkpoint
from typer.testing import CliRunner

from charrnn import failsafe
from charrnn.cli import app, hoist_debug
from charrnn.errors import CharrnnWarning, UsageError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CHARRNN_DEBUG", raising=False)


def env(tmp_path) -> dict:
    return dict(os.environ, CHARRNN_CACHE_DIR=str(tmp_path / "cache"))


@pytest.mark.parametrize(
    "exc, fragments, code",
    [
        (UsageError("bad flag"), ["bad flag"], 2),
        (MemoryError("Unable to allocate 1.75 TiB"), ["out of memory", "1.75 TiB", "smaller"], 1),
        (OSError(errno.ENOSPC, "No space left on device", "ck/x.npz"), ["ck/x.npz", "space"], 1),
        (OSError(errno.EMFILE, "Too many open files"), ["ulimit -n"], 1),
        (ValueError("boom\nsecond line"), ["internal error", "ValueError", "boom", "--debug"], 1),
    ],
)
def test_every_exception_is_one_line_with_an_exit_status(exc, fragments, code):
    message, status = failsafe.describe(exc)
    assert status == code and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_an_internal_error_is_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    ckpt = write_checkpoint(tmp_path / "run-best.npz")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("charrnn.sample.generate", broken)
    argv = ["sample", "-c", str(ckpt), "-n", "5"]
    err = one_line_error(CliRunner().invoke(app, argv), 1)
    assert "internal error (ZeroDivisionError: a bug)" in err and "--debug" in err

    for args in (["--debug", *argv], hoist_debug([*argv, "--debug"])):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 1
        assert "Traceback" in r.stderr and "ZeroDivisionError" in r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("charrnn: error: internal error")


def test_debug_is_taken_anywhere_before_a_double_dash():
    assert hoist_debug(["eval", "x.txt", "--debug"]) == ["--debug", "eval", "x.txt"]
    assert hoist_debug(["--debug", "eval"]) == ["--debug", "eval"]
    assert hoist_debug(["eval", "--", "--debug"]) == ["eval", "--", "--debug"]
    assert hoist_debug(["sample", "-n", "5"]) == ["sample", "-n", "5"]


def test_a_warning_is_one_line(tmp_path, monkeypatch):
    ckpt = write_checkpoint(tmp_path / "run-best.npz")

    def warn_then_generate(*args, **kwargs):
        warnings.warn("something to know\nover two lines", CharrnnWarning, stacklevel=1)
        return iter(())

    monkeypatch.setattr("charrnn.sample.generate", warn_then_generate)
    r = CliRunner().invoke(app, ["sample", "-c", str(ckpt), "-n", "5"])
    assert r.exit_code == 0, r.stderr
    assert r.stderr == "charrnn: warning: something to know over two lines\n"


def run(args, tmp_path, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "charrnn", *args],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=120,
        **kwargs,
    )


def test_full_and_closed_stdout_and_closed_stdin(tmp_path):
    ckpt = str(write_checkpoint(tmp_path / "run-best.npz"))
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "charrnn", "sample", "-c", ckpt, "-n", "50"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env(tmp_path),
            timeout=120,
        )
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("charrnn: error: no space left on device")

    def close(fd):
        return lambda: os.close(fd)

    r = subprocess.run(
        [sys.executable, "-m", "charrnn", "sample", "-c", ckpt, "-n", "50"],
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
        timeout=120,
        preexec_fn=close(1),
    )
    assert (r.returncode, r.stderr) == (1, "charrnn: error: standard output is closed\n")

    for argv in (["sample", "-c", ckpt, "--seed", "-"], ["train", "-", "--out", str(tmp_path)]):
        r = run(argv, tmp_path, preexec_fn=close(0))
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert "standard input is closed" in r.stderr


def test_sigterm_while_reading_the_corpus_leaves_no_spool(tmp_path):
    """SIGTERM before training starts ends the command like Ctrl-C: exit 130, no traceback, and
    the copy of the piped corpus being written is removed."""
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "charrnn", "train", str(fifo), "--out", str(tmp_path / "ck")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
    )
    cache = tmp_path / "cache" / "corpus"
    with open(fifo, "w") as writer:  # opened once the reader opens it; left open: no EOF
        writer.write("some text that keeps coming\n" * 100)
        writer.flush()
        deadline = time.monotonic() + 60
        while not list(cache.glob(".spool-*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(cache.glob(".spool-*")), "the corpus was never spooled"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "charrnn: interrupted"
    assert not list(cache.glob(".spool-*"))
    assert not (tmp_path / "ck").exists()  # nothing left of a run that never started


def test_ignored_hangup_stays_ignored():
    """Under nohup (SIGHUP ignored) prepare_process and the training handlers leave it alone."""
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        failsafe.prepare_process()
        restore = failsafe.on_stop_signals(lambda *a: None)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        restore()
    finally:
        signal.signal(signal.SIGHUP, old)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_a_failing_log_is_dropped_with_one_warning(capsys):
    seen = []

    def broken(event):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    emit = failsafe.tolerant([(broken, "the progress log"), (seen.append, "the other")])
    for event in range(3):
        emit(event)
    assert seen == [0, 1, 2]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the progress log" in err


def test_closed_stream_stand_in():
    s = failsafe.ClosedStream("standard output")
    assert not s.isatty()
    with pytest.raises(OSError, match="standard output is closed"):
        s.write("x")
    s.flush()  # flushing nothing is fine (the interpreter does it at exit)
    assert Path(os.devnull).exists()
