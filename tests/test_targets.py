"""Everything a run writes is checked before the corpus is read, and one writer per run
(charrnn/targets.py, charrnn/lock.py)."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cli_asserts import one_line_error
from typer.testing import CliRunner

import charrnn.data
from charrnn.cli import app
from charrnn.lock import RunBusy, RunLock, orphaned, sweep

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind\n" * 20
TINY = ["--hidden", "8", "--layers", "1", "--batch", "2", "--seq", "8", "--threads", "1"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def corpus(tmp_path) -> Path:
    p = tmp_path / "c.txt"
    p.write_text(TEXT)
    return p


@pytest.fixture
def corpus_never_read(monkeypatch):
    """Fail the test if the corpus is read: the check must come first."""

    def boom(*args, **kwargs):
        raise AssertionError("the corpus was read before the targets were checked")

    monkeypatch.setattr(charrnn.data, "load_corpus", boom)


def train(*args: str):
    return CliRunner().invoke(app, ["train", *TINY, "--steps", "2", "--quiet", *args])


def test_bad_log_path_fails_first_and_leaves_nothing(tmp_path, corpus, corpus_never_read):
    out = tmp_path / "new" / "ck"
    err = one_line_error(train(str(corpus), "--out", str(out), "--log-jsonl", str(tmp_path)), 2)
    assert f"--log-jsonl {tmp_path} is a folder" in err
    assert not (tmp_path / "new").exists()  # the out folder it made is gone again

    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    err = one_line_error(train(str(corpus), "--out", str(out), "--log-jsonl", str(fifo)), 1)
    assert "named pipe with no reader" in err


def test_log_in_a_new_folder_is_created(tmp_path, corpus):
    log = tmp_path / "logs" / "deep" / "run.jsonl"
    r = train(str(corpus), "--out", str(tmp_path / "ck"), "--log-jsonl", str(log))
    assert r.exit_code == 0, r.stderr
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [2]


def test_log_that_fills_up_is_dropped_and_training_goes_on(tmp_path, corpus):
    r = train(str(corpus), "--out", str(tmp_path / "ck"), "--log-jsonl", "/dev/full")
    assert r.exit_code == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "cannot write --log-jsonl /dev/full" in warnings[0]
    assert (tmp_path / "ck" / "c-latest.npz").exists()


def test_names_and_checkpoint_paths_are_checked_first(tmp_path, corpus, corpus_never_read):
    out = tmp_path / "ck"
    err = one_line_error(train(str(corpus), "--out", str(out), "--name", "a" * 300), 2)
    assert "too long" in err and "--name of at most" in err
    assert not out.exists()

    (out / "c-best.npz").mkdir(parents=True)
    err = one_line_error(train(str(corpus), "--out", str(out)), 2)
    assert f"{out / 'c-best.npz'} is a folder" in err
    (out / "c-best.npz").rmdir()

    (tmp_path / "file").write_text("x")
    err = one_line_error(train(str(corpus), "--out", str(tmp_path / "file" / "sub")), 1)
    assert "a part of the path is a file" in err


def test_a_failed_run_removes_the_folder_it_made(tmp_path):
    out = tmp_path / "a" / "b"
    err = one_line_error(train(str(tmp_path / "missing.txt"), "--out", str(out)), 1)
    assert "no such file" in err
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------------ the run lock


def test_lock_refuses_a_second_holder_and_names_it(tmp_path):
    first = RunLock(tmp_path, "run").acquire()
    holder = json.loads((tmp_path / ".run.lock").read_text())
    assert holder["pid"] == os.getpid() and holder["command"].startswith("charrnn")
    busy = rf"run 'run' in {tmp_path} is in use by process {os.getpid()}"
    with pytest.raises(RunBusy, match=busy):
        RunLock(tmp_path, "run").acquire()
    first.release()
    assert not (tmp_path / ".run.lock").exists()
    RunLock(tmp_path, "run").acquire().release()  # free again


def test_stale_lock_file_is_taken_over(tmp_path):
    (tmp_path / ".run.lock").write_text(json.dumps({"pid": 999999, "command": "charrnn train"}))
    lock = RunLock(tmp_path, "run").acquire()  # nobody holds the file: its holder died
    assert lock.took_over["pid"] == 999999
    lock.release()


HOLDER = textwrap.dedent(
    """
    import sys
    from charrnn.lock import RunLock
    lock = RunLock(sys.argv[1], sys.argv[2]).acquire()
    print("held", flush=True)
    sys.stdin.read()  # hold it until told to go (or killed)
    """
)


def hold_in_another_process(out: Path, name: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "held\n"
    return proc


def test_second_run_and_resume_of_a_running_run_refuse_then_a_killed_holder_is_stale(
    tmp_path, corpus
):
    out = tmp_path / "ck"
    assert train(str(corpus), "--out", str(out)).exit_code == 0
    latest = out / "c-latest.npz"
    before = latest.read_bytes()
    proc = hold_in_another_process(out, "c")
    try:
        for args in (
            [str(corpus), "--out", str(out), "--force"],  # --force does not beat a live run
            ["--resume", str(latest), "--steps", "4"],
            ["--resume", str(latest), "--steps", "4", "--out", str(tmp_path / "elsewhere")],
        ):
            r = CliRunner().invoke(app, ["train", *TINY, "--quiet", *args])
            err = one_line_error(r, 1)
            assert f"is in use by process {proc.pid}" in err, args
        assert latest.read_bytes() == before
    finally:
        proc.kill()
        proc.wait(timeout=30)
    argv = ["train", *TINY, "--quiet", "--resume", str(latest), "--steps", "4"]
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 0, r.stderr
    assert f"left locked by process {proc.pid}, which is no longer running" in r.stderr
    assert not (out / ".c.lock").exists()


def test_orphaned_temporary_files_are_swept(tmp_path):
    old = time.time() - 3600
    orphan, fresh, held = tmp_path / ".a.tmp", tmp_path / ".b.tmp", tmp_path / ".c.tmp"
    for p in (orphan, fresh, held):
        p.write_text("partial")
    for p in (orphan, held):
        os.utime(p, (old, old))
    import fcntl

    fd = os.open(held, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # its writer is still at it
    try:
        assert orphaned(orphan) and not orphaned(fresh) and not orphaned(held)
        sweep(tmp_path, (".*.tmp",))
        assert not orphan.exists() and fresh.exists() and held.exists()
    finally:
        os.close(fd)


def test_a_killed_save_leaves_nothing_for_the_next_run(tmp_path, corpus):
    out = tmp_path / "ck"
    out.mkdir()
    debris = out / ".c-latest.npz.0123abcd.tmp"  # what a save killed halfway leaves
    debris.write_bytes(b"PK\x03\x04 half a checkpoint")
    other = out / ".other-latest.npz.0123abcd.tmp"  # another run's: not ours to remove
    other.write_bytes(b"PK")
    assert train(str(corpus), "--out", str(out)).exit_code == 0
    assert not debris.exists() and other.exists()


def test_a_file_system_without_locks_warns_and_trains(tmp_path, corpus, monkeypatch):
    import errno

    import charrnn.lock

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(charrnn.lock.fcntl, "flock", no_locks)
    r = train(str(corpus), "--out", str(tmp_path / "ck"))
    assert r.exit_code == 0, r.stderr
    assert "warning: cannot lock run 'c'" in r.stderr and "No locks available" in r.stderr
