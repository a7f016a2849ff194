"""Ctrl-C, SIGTERM and SIGHUP at several moments of a real training process (including during
saves): exit 130, the latest checkpoint always loads, and --resume from it works."""

import os
import signal
import subprocess
import sys
import time

import pytest

from charrnn.checkpoint import load

TEXT = (
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40
)


def start(corpus, out, *extra):
    env = dict(os.environ, CHARRNN_CACHE_DIR=str(out.parent / "cache"))
    cmd = [
        sys.executable,
        "-m",
        "charrnn",
        "train",
        str(corpus),
        "--hidden",
        "32",
        "--layers",
        "2",
        "--batch",
        "4",
        "--seq",
        "16",
        "--threads",
        "1",
        "--eval-every",
        "1",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = proc.stderr.readline().decode()
    if "chosen for the budget" in line:  # the model's size, before the run starts
        line = proc.stderr.readline().decode()
    assert line.startswith("charrnn: training"), line  # the start line: handlers installed
    return proc


def finish(proc):
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    "sig, delay",
    [
        (signal.SIGINT, 0.0),
        (signal.SIGTERM, 0.15),
        (signal.SIGINT, 0.4),
        (signal.SIGTERM, 0.9),
        (signal.SIGHUP, 0.3),  # the terminal closed: saved like Ctrl-C
    ],
)
def test_signal_saves_and_resume_works(tmp_path, sig, delay):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "ck"
    proc = start(corpus, out, "--steps", "100000")
    time.sleep(delay)
    proc.send_signal(sig)
    code, stdout, stderr = finish(proc)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert "--resume" in stderr
    ckpt = load(out / "c-latest.npz")
    step = ckpt.meta["step"]
    proc = start(corpus, out, "--steps", str(step + 2), "--resume", str(out / "c-latest.npz"))
    code, stdout, stderr = finish(proc)
    assert code == 0, stderr
    assert load(out / "c-latest.npz").meta["step"] == step + 2


def test_second_ctrl_c_quits_at_once_and_keeps_the_checkpoint(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "ck"
    proc = start(corpus, out, "--steps", "100000", "--hidden", "128")
    deadline = time.monotonic() + 60
    while not (out / "c-latest.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    code, _, stderr = finish(proc)
    assert code == 130
    assert "Traceback" not in stderr
    load(out / "c-latest.npz")  # still loads
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
