"""Memory and disk are checked before the work: the estimates follow what the code really
allocates (tracemalloc sees every NumPy array; charrnn/footprint.py), the limits are read from
the machine, the cgroup and ulimit (charrnn/resources.py), and a request past them is one line
with what to lower."""

import dataclasses
import gc
import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from cli_asserts import one_line_error
from test_sample_cli import write_checkpoint
from typer.testing import CliRunner

import charrnn.data
import charrnn.footprint as F
import charrnn.resources as R
from charrnn.cli import app
from charrnn.config import ModelConfig, TrainConfig
from charrnn.errors import ResourceError

TEXT = "".join(chr(97 + (i * 7 + i // 13) % 26) + (" " if i % 5 == 0 else "") for i in range(6000))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))


def peak_of(fn) -> int:
    """Bytes `fn()` allocates at its peak, as tracemalloc sees them (NumPy reports to it)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def within(estimate: int, real: int, factor: float = 1.5) -> bool:
    """estimate within a factor of real, or both small (NumPy's cache of small blocks keeps
    some freed ones in tracemalloc's count)."""
    return real / factor <= estimate <= real * factor or abs(estimate - real) < 256 << 10


@pytest.mark.parametrize(
    "options",
    [
        {"hidden": 64, "layers": 2, "batch": 8, "seq": 16},
        {
            "hidden": 128,
            "layers": 2,
            "batch": 64,
            "seq": 50,
            "cell": "gru",
            "threads": 2,
            "val_fraction": 0.3,
        },  # fmt: skip
        {"hidden": 400, "layers": 1, "batch": 4, "seq": 20, "cell": "rnn", "optimizer": "sgd"},
        {"hidden": 160, "layers": 2, "batch": 16, "seq": 12, "embed": 16, "threads": 2},
        {"hidden": 256, "layers": 2, "batch": 32, "seq": 32},
        {"hidden": 96, "layers": 2, "batch": 16, "seq": 20, "cell": "cifg"},
        {"hidden": 96, "layers": 2, "batch": 16, "seq": 20, "proj": 48, "peephole": True},
    ],
)
def test_training_estimate_follows_real_allocation(tmp_path, monkeypatch, options):
    from charrnn.runs import Request, build_configs, prepare
    from charrnn.train import StopRule, Trainer

    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    loaded = charrnn.data.load_corpus([str(corpus)])  # reading is not the model's: leave it out
    monkeypatch.setattr(charrnn.data, "load_corpus", lambda *a, **k: loaded)
    model, cfg, explicit = build_configs(None, {"threads": 1, **options})

    def run():
        req = Request([str(corpus)], model, cfg, explicit, out=tmp_path / "ck", force=True)
        r, _ = prepare(req)
        Trainer(r, StopRule(steps=4), lambda e: None, eval_every=2).train()
        return r

    r = run()  # warm: kernels loaded, corpus cached
    need = F.need_training(r.model_config, r.train_config, len(r.val_ids))
    real = peak_of(run)
    assert within(need.total, real, 1.25), (need.parts, real)


@pytest.mark.parametrize(
    "samples, length, engine, keep",
    [(64, 300, "auto", True), (200, 1000, "auto", True), (2, 3000, "numba", True),
     (64, 2500, "numpy", True), (64, 2500, "numpy", False)],
)  # fmt: skip
def test_sampling_estimate_follows_real_allocation(samples, length, engine, keep):
    from charrnn.model import CharRNN
    from charrnn.sample import SampleOptions, generate, prime_ids
    from charrnn.step import prepare
    from charrnn.vocab import Vocab

    cfg = ModelConfig(cell="lstm", vocab_size=120, hidden=64, layers=2)
    vocab = Vocab(np.arange(32, 152))
    w = prepare(cfg, CharRNN.create(cfg, np.random.default_rng(0)).params)

    def run():
        prime, starts = prime_ids(vocab, "seed", num_samples=samples)
        texts = list(starts)
        options = SampleOptions(length=length, num_samples=samples)
        for piece in generate(w, vocab, prime, options, np.random.default_rng(0), engine=engine):
            if keep:
                texts[piece.row] += piece.text

    run()
    fused = {"numba": True, "numpy": False}.get(engine)
    need = F.need_sampling(cfg, samples, length, 5, keep, char_bytes=1, fused=fused)
    assert within(need.total, peak_of(run)), need.parts


def test_sampling_text_estimate_follows_real_allocation():
    """What keeping the samples' text costs (streamed output keeps all but the first until
    printed; --json keeps all): the difference with and without."""
    from charrnn.model import CharRNN
    from charrnn.sample import SampleOptions, generate, prime_ids
    from charrnn.step import prepare
    from charrnn.vocab import Vocab

    cfg = ModelConfig(cell="rnn", vocab_size=60, hidden=16, layers=1)
    vocab = Vocab(np.arange(65, 125))
    w = prepare(cfg, CharRNN.create(cfg, np.random.default_rng(0)).params)
    K, n = 256, 3000

    def run(keep: bool) -> int:
        def go():
            prime, starts = prime_ids(vocab, "seed", num_samples=K)
            texts = list(starts)
            options = SampleOptions(length=n, num_samples=K)
            for piece in generate(w, vocab, prime, options, np.random.default_rng(0), "numpy"):
                if keep:
                    texts[piece.row] += piece.text

        return peak_of(go)

    run(True)
    real = run(True) - run(False)
    need = [F.need_sampling(cfg, K, n, 5, keep, 1, fused=False).total for keep in (True, False)]
    assert within(need[0] - need[1], real), (need, real)


@pytest.mark.parametrize(
    "hidden, n, streams, keep",
    [(96, 60_000, 0, False), (96, 60_000, 1, True), (8, 400_000, 1, True)],
)
def test_scoring_estimate_follows_real_allocation(hidden, n, streams, keep):
    from charrnn.evaluate import score_ids
    from charrnn.model import CharRNN

    cfg = ModelConfig(cell="gru", vocab_size=40, hidden=hidden, layers=2)
    model = CharRNN.create(cfg, np.random.default_rng(0))
    ids = np.random.default_rng(1).integers(0, 40, n).astype(np.uint8)
    score = score_ids(model, ids, threads=2, streams=streams, keep=keep)
    need = F.need_scoring(cfg, ids.size, score.streams, 2, keep)
    real = peak_of(lambda: score_ids(model, ids, threads=2, streams=streams, keep=keep))
    assert within(need.total, real), (need.parts, real)


def test_message_gives_the_estimate_the_limit_and_what_would_fit(monkeypatch):
    monkeypatch.setattr(R, "headroom", lambda engine=False: (1 << 30, "available on this machine"))
    cfg = ModelConfig(cell="lstm", vocab_size=65, hidden=30000, layers=2)
    train = TrainConfig(batch=50, seq=100)
    with pytest.raises(ResourceError) as info:
        F.check_training(cfg, train)
    msg = str(info.value)
    assert "needs about" in msg and "more than the 1.0 GiB available on this machine" in msg
    best = int(msg.split("--hidden to ")[1].split()[0].replace(",", ""))
    extra = R.ENGINE_RSS if R._engine_pending() else 0

    def total(hidden: int) -> int:
        return F.need_training(dataclasses.replace(cfg, hidden=hidden), train).total + extra

    assert total(best) <= 1 << 30 < total(best + 1)  # the largest that fits


def test_cgroup_limits_are_read_v1_and_v2(tmp_path, monkeypatch):
    v2 = tmp_path / "v2"
    (v2 / "a" / "b").mkdir(parents=True)
    (v2 / "a" / "memory.max").write_text("1000000\n")
    (v2 / "a" / "memory.current").write_text("400000\n")
    (v2 / "a" / "memory.stat").write_text("anon 1\ninactive_file 100000\n")
    (v2 / "a" / "b" / "memory.max").write_text("max\n")  # no limit here, one above
    (v2 / "a" / "b" / "memory.current").write_text("5\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/a/b\n")
    monkeypatch.setattr(R, "CGROUP_ROOT", v2)
    monkeypatch.setattr(R, "PROC_CGROUP", proc)
    assert R._cgroup_headroom() == 1000000 - 400000 + 100000

    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("2000000\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text("1500000\n")
    proc.write_text("4:memory:/docker/abc\n3:cpu:/\n")  # inside a container: the mount is ours
    monkeypatch.setattr(R, "CGROUP_ROOT", v1)
    assert R._cgroup_headroom() == 500000
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert R._cgroup_headroom() is None  # unlimited


def test_huge_model_is_refused_at_once_with_nothing_left(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the corpus was read before the memory check")

    monkeypatch.setattr(charrnn.data, "load_corpus", boom)
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "ck"
    r = CliRunner().invoke(app, ["train", str(corpus), "--hidden", "200000", "--out", str(out)])
    err = one_line_error(r, 1)
    assert "of memory" in err and "lower --hidden to" in err
    assert not out.exists()


def test_sample_and_eval_at_their_limits(tmp_path, monkeypatch):
    ckpt = str(write_checkpoint(tmp_path / "run-best.npz"))
    monkeypatch.setattr(R, "headroom", lambda engine=False: (64 << 20, "available on this machine"))
    r = CliRunner().invoke(app, ["sample", "-c", ckpt, "-n", "5", "--num-samples", "100000"])
    err = one_line_error(r, 1)
    assert "generating 100,000 samples needs about" in err and "--num-samples to" in err

    text = tmp_path / "t.txt"
    text.write_text("First Citizen: speak, speak.\n" * 300)
    r = CliRunner().invoke(app, ["eval", str(text), "-c", ckpt, "--streams", str(10**12), "--json"])
    assert r.exit_code == 0, r.stderr  # as many segments as the text allows, at once
    r = CliRunner().invoke(app, ["eval", str(text), "-c", ckpt, "--show"])
    assert r.exit_code == 0, r.stderr  # the surprisal of 9,000 characters fits in 64 MiB


def test_segments_are_bounded_by_the_text_not_by_the_request():
    import threading

    from charrnn.evaluate import _segments

    found = []
    t = threading.Thread(target=lambda: found.append(_segments(10_000, 10**18, 768, 256)))
    t.daemon = True  # counting down from 10**18 would never end: fail instead of hanging
    t.start()
    t.join(60)
    assert found and found[0] == _segments(10_000, 64, 768, 256)


def test_address_space_limit_is_one_line_not_a_hang(tmp_path):
    """Under ulimit -v the engine's start-up could spin forever in OpenBLAS when its buffers do
    not fit; the check comes first and says so."""
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (700 << 20, 700 << 20))

    r = subprocess.run(
        [sys.executable, "-m", "charrnn", "train", str(corpus), "--hidden", "1500",
         "--out", str(tmp_path / "ck")],
        capture_output=True, text=True, timeout=120, preexec_fn=limit,
        env=dict(os.environ, CHARRNN_CACHE_DIR=str(tmp_path / "cache")),
    )  # fmt: skip
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "left by the address-space limit (ulimit -v)" in r.stderr


def test_full_disk_for_checkpoints_and_for_the_cache(tmp_path, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    monkeypatch.setattr(R, "free_disk", lambda path: 1000)
    r = CliRunner().invoke(app, ["train", str(corpus), "--out", str(tmp_path / "ck")])
    err = one_line_error(r, 1)
    assert "its encoding: about" in err and "CHARRNN_CACHE_DIR" in err

    import charrnn.corpus as C

    monkeypatch.setattr(C, "check_disk", lambda *a: None)  # the cache fits; the checkpoints not
    r = CliRunner().invoke(app, ["train", str(corpus), "--out", str(tmp_path / "ck")])
    err = one_line_error(r, 1)
    assert "checkpoints of this model" in err and "write elsewhere with --out" in err

    monkeypatch.setattr(C, "free_disk", lambda path: (C.SPOOL_RESERVE + 10) if path else 0)
    r = CliRunner().invoke(
        app, ["train", "-", "--out", str(tmp_path / "ck")], input="endless text " * 100
    )
    err = one_line_error(r, 1)
    assert "<stdin>: keeping a copy of it would fill the disk" in err
    assert not list((tmp_path / "cache" / "corpus").glob(".spool-*"))


def test_free_disk_of_a_path_not_made_yet(tmp_path):
    assert R.free_disk(tmp_path / "not" / "yet") == R.free_disk(tmp_path) > 0
    assert Path(tmp_path).exists()


def test_an_endless_seed_on_stdin_is_refused(monkeypatch):
    import io

    monkeypatch.setattr(R, "headroom", lambda engine=False: (64 << 20, "available on this machine"))

    class Endless:  # `yes | charrnn sample --seed -`
        def read(self, n):
            return b"y\n" * (n // 2)

    with pytest.raises(ResourceError, match="the seed on stdin goes on past 4.0 MiB"):
        R.read_bounded(Endless(), "the seed on stdin")
    assert R.read_bounded(io.BytesIO(b"ROMEO:"), "the seed") == b"ROMEO:"
    assert R.read_bounded(io.StringIO("ROMEO:"), "the seed") == "ROMEO:"
    assert R.read_bounded(io.BytesIO(b""), "the seed") == b""
