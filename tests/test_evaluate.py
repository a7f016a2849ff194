"""`charrnn eval` through the CLI and `charrnn.evaluate.score_ids`, against a naive NumPy model.

The reference is the shared naive one (tests/reference.py), with the state carried over the
whole text.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import reference as ref
from cli_asserts import ok, one_line_error
from typer.testing import CliRunner

from charrnn import evaluate as ev
from charrnn.checkpoint import Checkpoint, save
from charrnn.cli import app
from charrnn.config import ModelConfig, TrainConfig, param_shapes
from charrnn.cpus import cpu_count
from charrnn.evaluate import score_ids
from charrnn.model import CharRNN
from charrnn.vocab import Vocab

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n"
)


# --------------------------------------------------------------------------------- reference


def reference(params: dict, cfg: ModelConfig, ids) -> tuple[np.ndarray, list[np.ndarray]]:
    """The shared naive reference (tests/reference.py) from the zero state. Returns the nats of
    predicting ids[1:] (N-1,) and every layer's output after each character, a list of (N, R)."""
    x = np.asarray(ids, int)[None]
    logits, _, outs = ref.run(cfg, params, x)
    return ref.nll(logits[:, :-1], x[:, 1:])[0], [o[0] for o in outs]


# --------------------------------------------------------------------------------- helpers


def make_checkpoint(
    path: Path,
    text: str = TEXT,
    *,
    cell="lstm",
    hidden=12,
    layers=2,
    embed=0,
    nonlinearity="tanh",
    seed=0,
    scale=0.4,
    meta=None,
    **options,
):
    """A random model over the vocabulary of `text`, saved at `path`; returns (params, cfg).
    options: other ModelConfig fields (bias, peephole, proj)."""
    vocab = Vocab.from_text(text)
    cfg = ModelConfig(
        cell=cell,
        vocab_size=len(vocab),
        hidden=hidden,
        layers=layers,
        embed=embed,
        nonlinearity=nonlinearity,
        **options,
    )
    rng = np.random.default_rng(seed)
    params = {
        k: (scale * rng.standard_normal(s)).astype(np.float32) for k, s in param_shapes(cfg).items()
    }
    save(path, Checkpoint(cfg, params, vocab, dict(meta or {"name": path.stem})))
    return params, cfg


def ids_of(text: str, vocab_text: str = TEXT) -> list[int]:
    return Vocab.from_text(vocab_text).encode(text).tolist()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Work in tmp_path with a private corpus cache."""
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def run(*args: str, input=None):
    return CliRunner().invoke(app, ["eval", *args], input=input, catch_exceptions=False)


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


# --------------------------------------------------------------------------------- scoring


@pytest.mark.parametrize(
    "arch",
    [
        {"cell": "lstm"},
        {"cell": "gru", "layers": 3},
        {"cell": "rnn", "nonlinearity": "relu", "scale": 0.3},
        {"cell": "lstm", "embed": 5, "layers": 1},
        {"cell": "cifg"},
        {"cell": "lstm", "peephole": True, "proj": 5, "bias": False},
    ],
    ids=["lstm", "gru3", "rnn-relu", "lstm-embed", "cifg", "lstm-peephole-proj-nobias"],
)
@pytest.mark.parametrize("threads", ["1", "2"])
def test_nats_bits_and_perplexity_match_a_naive_reference(tmp_path, arch, threads):
    params, cfg = make_checkpoint(tmp_path / "m.npz", **arch)
    (tmp_path / "t.txt").write_text(TEXT)
    rec = json_lines(ok(run("t.txt", "-c", "m.npz", "--json", "--threads", threads)))
    assert len(rec) == 1
    r = rec[0]
    nll, _ = reference(params, cfg, ids_of(TEXT))
    assert r["chars"] == len(TEXT) - 1 and r["skipped"] == 0
    assert r["nats_per_char"] == pytest.approx(nll.mean(), rel=1e-5)
    assert r["bits_per_char"] == pytest.approx(r["nats_per_char"] / math.log(2), rel=1e-12)
    assert r["perplexity"] == pytest.approx(math.exp(r["nats_per_char"]), rel=1e-12)
    assert r["checkpoint"] == "m.npz" and r["text"] == "t.txt" and r["rank"] == 1


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_chunk_size_and_threads_do_not_change_the_single_pass(tmp_path, cell):
    """The state is carried across chunks: any chunk size gives the same per-character nats."""
    text = TEXT * 3
    params, cfg = make_checkpoint(tmp_path / "m.npz", text, cell=cell, layers=3)
    model = CharRNN.from_params(cfg, params)
    ids = np.array(ids_of(text, text), np.uint8)
    nll, _ = reference(params, cfg, ids.tolist())
    for chunk in (1, 7, 64, 10_000):
        for threads in (1, 2, 4):
            s = score_ids(model, ids, chunk=chunk, threads=threads, keep=True, streams=1)
            assert s.chars == len(text) - 1 and s.streams == 1 and s.recomputed == 0
            np.testing.assert_allclose(s.surprisal, nll, rtol=1e-5, atol=1e-5)
            assert s.total_nats == pytest.approx(nll.sum(), rel=1e-6)


def test_progress_reports_every_chunk_up_to_the_end(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "m.npz")
    model = CharRNN.from_params(cfg, params)
    ids = np.array(ids_of(TEXT), np.uint8)
    seen = []
    score_ids(model, ids, chunk=50, streams=1, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == len(TEXT) - 1
    assert len(seen) == math.ceil((len(TEXT) - 1) / 50)
    seen = []
    long = np.tile(ids, 40)
    s = score_ids(model, long, streams=4, burn_in=64, check=64, progress=seen.append)
    assert s.streams == 4
    assert seen == sorted(seen) and seen[-1] == long.size - 1 and len(seen) > 3


def test_stdin_and_a_file_give_the_same_score(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_text(TEXT)
    a = json_lines(ok(run("t.txt", "-c", "m.npz", "--json")))[0]
    b = json_lines(ok(run("-", "-c", "m.npz", "--json", input=TEXT)))[0]
    assert b["text"] == "<stdin>"
    assert a["nats_per_char"] == pytest.approx(b["nats_per_char"], rel=1e-12)


# ------------------------------------------------------------------ segments, checked


def _long_ids(n: int, vocab: int, seed: int = 5) -> np.ndarray:
    """A text with structure (repeated words, some noise): ids of TEXT's vocabulary."""
    rng = np.random.default_rng(seed)
    words = [rng.integers(0, vocab, rng.integers(2, 8)) for _ in range(40)]
    out = np.concatenate([words[i] for i in rng.integers(0, 40, n // 3)])[:n]
    return out.astype(np.uint8)


ARCHS = [pytest.param({"cell": cell}, id=cell) for cell in ("lstm", "gru", "rnn", "cifg")] + [
    pytest.param({"cell": "lstm", "peephole": True, "proj": 7}, id="lstm-peephole-proj")
]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("streams, burn_in, check", [(4, 128, 64), (7, 200, 32), (10, 512, 256)])
def test_segments_give_the_single_pass_figure(tmp_path, arch, streams, burn_in, check):
    """A model that forgets: every segment's guess is kept, and every character's nats agree
    with the single pass's to float32 precision (and with the float64 reference)."""
    params, cfg = make_checkpoint(tmp_path / "m.npz", **arch, scale=0.3)
    model = CharRNN.from_params(cfg, params)
    ids = _long_ids(12_000, cfg.vocab_size)
    one = score_ids(model, ids, keep=True, streams=1)
    seg = score_ids(model, ids, keep=True, streams=streams, burn_in=burn_in, check=check)
    # the fewest rows of R steps (a multiple of check) that cover the text: S or one fewer
    assert streams - 1 <= seg.streams <= streams and seg.chars == one.chars == ids.size - 1
    assert seg.burn_in == -(-burn_in // check) * check
    assert seg.recomputed == 0 and 0 <= seg.state_gap <= 1e-5  # kept: within the tolerance
    np.testing.assert_allclose(seg.surprisal, one.surprisal, rtol=2e-5, atol=2e-5)
    assert seg.total_nats == pytest.approx(one.total_nats, rel=1e-8)
    nll, _ = reference(params, cfg, ids[:3000].tolist())
    np.testing.assert_allclose(seg.surprisal[:2999], nll, rtol=1e-4, atol=1e-4)


def _memory_model(tmp_path, forget_bias: float):
    """A one-layer LSTM whose cells forget at the rate set by forget_bias (a big bias: never)."""
    params, cfg = make_checkpoint(tmp_path / "m.npz", layers=1, hidden=8, scale=0.3)
    h = cfg.hidden
    for name in ("bias_ih_l0", "bias_hh_l0"):
        params[name][h : 2 * h] = forget_bias / 2  # the forget gate's two halves
    params["weight_hh_l0"][h : 2 * h] = 0.0  # the forget gate ignores h: a fixed rate
    params["weight_ih_l0"][h : 2 * h] = 0.0  # ... and the input
    return CharRNN.from_params(cfg, params)


def test_a_model_that_never_forgets_is_recomputed_not_guessed(tmp_path):
    """Forget gate at 1: a segment's state depends on everything before it, so no guess is
    ever kept; the whole text after segment 0 is recomputed and equals the single pass."""
    model = _memory_model(tmp_path, forget_bias=40.0)
    ids = _long_ids(8_000, model.config.vocab_size)
    one = score_ids(model, ids, keep=True, streams=1)
    seg = score_ids(model, ids, keep=True, streams=4, burn_in=128, check=64)
    assert seg.streams == 4
    first_segment = -(-(ids.size - 1 + 3 * 128) // 4 // 64) * 64  # R: what row 0 scores
    assert seg.recomputed == ids.size - 1 - first_segment
    np.testing.assert_allclose(seg.surprisal, one.surprisal, rtol=1e-6, atol=1e-6)
    assert seg.total_nats == pytest.approx(one.total_nats, rel=1e-9)


def test_a_model_with_a_long_memory_is_recomputed_until_the_guess_catches_up(tmp_path):
    """Forget gate at 0.95: a guess made after 64 characters is still off, so each segment is
    recomputed from the carried state until the guess agrees (some hundreds of characters),
    then kept."""
    model = _memory_model(tmp_path, forget_bias=math.log(0.95 / 0.05))
    ids = _long_ids(40_000, model.config.vocab_size)
    one = score_ids(model, ids, keep=True, streams=1)
    seg = score_ids(model, ids, keep=True, streams=8, burn_in=64, check=64)
    per_segment = seg.recomputed / 7
    assert 64 < per_segment < 1500, seg.recomputed  # some, not all (segments are ~5,000)
    assert 0 < seg.state_gap <= 1e-5
    np.testing.assert_allclose(seg.surprisal, one.surprisal, rtol=2e-5, atol=2e-5)
    assert seg.total_nats == pytest.approx(one.total_nats, rel=1e-8)


def test_a_model_that_forgets_is_measured_then_scored_as_segments(tmp_path):
    """By default the pass first measures how many characters a guess from the zero state
    needs to agree with it; a random model forgets within a few hundred, so the rest of the
    text is scored as segments with that burn-in, to the single pass's figure."""
    params, cfg = make_checkpoint(tmp_path / "m.npz", scale=0.3)
    model = CharRNN.from_params(cfg, params)
    ids = _long_ids(40_000, cfg.vocab_size)
    one = score_ids(model, ids, keep=True, streams=1)
    auto = score_ids(model, ids, keep=True, threads=2)
    assert 0 < auto.measured <= ev.MAX_BURN_IN and auto.measured % ev.DEFAULT_CHECK == 0
    assert auto.streams == 2 * ev.ROWS_PER_CORE and auto.burn_in == auto.measured
    assert auto.recomputed == 0 and auto.state_gap <= ev.STATE_RTOL
    np.testing.assert_allclose(auto.surprisal, one.surprisal, rtol=2e-5, atol=2e-5)
    assert auto.total_nats == pytest.approx(one.total_nats, rel=1e-8)


def test_a_model_that_never_forgets_gets_the_single_pass_after_measuring(tmp_path, monkeypatch):
    """Forget gate at 1: the measuring guess never catches up (its gap stops closing, and it is
    given up on early), so the whole text is the split single pass (the guess rode along as a
    second row; BLAS may round a row of a two-row product differently from the same row alone,
    so the first row's values agree to float32 rounding, not bit for bit, on every host)."""
    from charrnn.splitpass import SplitPass

    model = _memory_model(tmp_path, forget_bias=40.0)
    ids = _long_ids(40_000, model.config.vocab_size)
    one = score_ids(model, ids, keep=True, streams=1)
    riding = []
    real = SplitPass.nll

    def nll(self, x, *rest):
        riding.extend([x.shape[1]] if x.shape[0] == 2 else [])
        return real(self, x, *rest)

    monkeypatch.setattr(SplitPass, "nll", nll)
    auto = score_ids(model, ids, keep=True)
    assert 0 < sum(riding) < ev.MAX_BURN_IN  # characters the guess rode along
    assert auto.measured is None and one.measured == 0
    assert auto.streams == 1 and auto.burn_in == 0 and auto.recomputed == 0
    np.testing.assert_allclose(auto.surprisal, one.surprisal, rtol=1e-6, atol=0)
    assert auto.total_nats == pytest.approx(one.total_nats, rel=1e-8)


def test_segments_that_would_cost_too_much_burn_in_are_not_used(tmp_path):
    """A model that forgets only after ~1,000 characters, on a text where 11 segments' burn-ins
    would be a third of it: fewer segments, so that their burn-ins stay within BURN_IN_SHARE."""
    model = _memory_model(tmp_path, forget_bias=math.log(0.95 / 0.05))
    ids = _long_ids(30_000, model.config.vocab_size)
    auto = score_ids(model, ids, keep=True, threads=2)
    assert auto.measured and auto.measured >= 768
    assert 1 < auto.streams < 2 * ev.ROWS_PER_CORE
    assert (auto.streams - 1) * auto.burn_in <= ev.BURN_IN_SHARE * ids.size
    one = score_ids(model, ids, keep=True, streams=1)
    assert auto.total_nats == pytest.approx(one.total_nats, rel=1e-8)


def test_short_texts_get_the_single_pass(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "m.npz")
    model = CharRNN.from_params(cfg, params)
    ids = np.array(ids_of(TEXT * 3), np.uint8)
    s = score_ids(model, ids, burn_in=1024)
    assert s.streams == 1 and s.burn_in == 0 and s.recomputed == 0


def test_the_cli_reports_segments_and_agrees_with_the_single_pass(tmp_path):
    make_checkpoint(tmp_path / "m.npz", scale=0.3)
    rng = np.random.default_rng(0)
    letters = sorted(set(TEXT))
    (tmp_path / "t.txt").write_text("".join(rng.choice(letters, 40_000)))
    one = json_lines(ok(run("t.txt", "-c", "m.npz", "--json", "--streams", "1")))[0]
    assert one["streams"] == 1 and one["burn_in"] == 0 and one["recomputed"] == 0
    seg = json_lines(ok(run("t.txt", "-c", "m.npz", "--json", "--burn-in", "300")))[0]
    S = ev._segments(39_999, ev.ROWS_PER_CORE * cpu_count(), 512, 256)[0]
    assert seg["streams"] == S > 1 and seg["burn_in"] == 512  # rounded up to the 256-step grid
    assert seg["recomputed"] == 0 and 0 <= seg["state_gap"] <= 1e-5  # (engine tests see it > 0)
    assert seg["chars"] == one["chars"] == 39_999
    assert seg["nats_per_char"] == pytest.approx(one["nats_per_char"], rel=1e-8)


# --------------------------------------------------------------------------------- unknown chars


def test_unknown_characters_are_named_by_default(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "q.txt").write_text('All: "speak" café\n')
    err = one_line_error(run("q.txt", "-c", "m.npz"), 1)
    assert "q.txt" in err and "'\"'" in err and "'é'" in err and "--unk skip" in err


def test_unk_skip_leaves_them_out_and_reports_the_count(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "m.npz")
    text = 'All: "speak" café\nFirst!'
    (tmp_path / "q.txt").write_text(text)
    r = json_lines(ok(run("q.txt", "-c", "m.npz", "--unk", "skip", "--json")))[0]
    kept = "".join(ch for ch in text if ch in set(TEXT))
    assert r["skipped"] == len(text) - len(kept) == 4
    assert r["chars"] == len(kept) - 1
    nll, _ = reference(params, cfg, ids_of(kept))
    assert r["nats_per_char"] == pytest.approx(nll.mean(), rel=1e-5)
    table = ok(run("q.txt", "-c", "m.npz", "--unk", "skip"))
    assert "skipped" in table


# --------------------------------------------------------------------------------- test split


def trained_checkpoint(tmp_path, corpus_text, val=0.1, test=0.2, sources=None, **kw):
    """A checkpoint whose meta says it was trained on corpus.txt, as `charrnn train` writes it."""
    from charrnn.data import load_corpus

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text)
    fp = dict(load_corpus([str(corpus)]).fingerprint)
    fp["sources"] = [str(corpus.resolve())] if sources is None else sources
    meta = {
        "name": "run",
        "kind": "best",
        "step": 40,
        "corpus": fp,
        "train_config": TrainConfig(val_fraction=val, test_fraction=test).to_dict(),
    }
    path = tmp_path / "checkpoints" / "run-best.npz"
    params, cfg = make_checkpoint(path, corpus_text, meta=meta, **kw)
    return path, params, cfg


def test_without_a_file_the_checkpoints_own_test_split_is_scored(tmp_path):
    corpus = TEXT * 2
    path, params, cfg = trained_checkpoint(tmp_path, corpus, val=0.1, test=0.2)
    n_test = math.floor(len(corpus) * 0.2 + 0.5)
    test_text = corpus[len(corpus) - n_test :]
    nll, _ = reference(params, cfg, ids_of(test_text, corpus))
    # no --checkpoint: the newest run's best in ./checkpoints
    r = json_lines(ok(run("--json")))[0]
    assert r["split"] == "test" and "corpus.txt" in r["text"]
    assert r["chars"] == n_test - 1
    assert r["nats_per_char"] == pytest.approx(nll.mean(), rel=1e-5)
    assert r["checkpoint"] == str(Path("checkpoints") / "run-best.npz")


def test_a_changed_corpus_is_refused_naming_the_file(tmp_path):
    path, _, _ = trained_checkpoint(tmp_path, TEXT * 2)
    (tmp_path / "corpus.txt").write_text(TEXT * 2 + "more")
    err = one_line_error(run("-c", str(path)), 1)
    assert "corpus.txt" in err and "changed" in err and "eval FILE" in err


def test_a_missing_corpus_is_refused_naming_the_file(tmp_path):
    path, _, _ = trained_checkpoint(tmp_path, TEXT * 2)
    (tmp_path / "corpus.txt").unlink()
    err = one_line_error(run("-c", str(path)), 1)
    assert "corpus.txt" in err and "not found" in err


@pytest.mark.parametrize(
    "case",
    ["stdin", "no-meta", "no-test-split"],
)
def test_checkpoints_without_a_usable_test_split_ask_for_a_file(tmp_path, case):
    if case == "stdin":
        path, _, _ = trained_checkpoint(tmp_path, TEXT, sources=[])
    elif case == "no-test-split":
        path, _, _ = trained_checkpoint(tmp_path, TEXT, test=0.0)
    else:
        path = tmp_path / "bare.npz"
        make_checkpoint(path)
    err = one_line_error(run("-c", str(path)), 1)
    assert "charrnn eval FILE" in err


# --------------------------------------------------------------------------------- several


def test_several_checkpoints_are_ranked_by_bits_per_char(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    expected = {}
    for seed, scale in ((1, 0.2), (2, 0.6), (3, 1.2)):
        params, cfg = make_checkpoint(tmp_path / f"m{seed}.npz", seed=seed, scale=scale)
        expected[f"m{seed}.npz"] = reference(params, cfg, ids_of(TEXT))[0].mean()
    args = ["t.txt", "-c", "m2.npz", "-c", "m1.npz", "-c", "m3.npz"]
    recs = json_lines(ok(run(*args, "--json")))
    assert [r["checkpoint"] for r in recs] == ["m2.npz", "m1.npz", "m3.npz"]  # given order
    for r in recs:
        assert r["nats_per_char"] == pytest.approx(expected[r["checkpoint"]], rel=1e-5)
    by_rank = sorted(recs, key=lambda r: r["rank"])
    assert [r["rank"] for r in by_rank] == [1, 2, 3]
    assert [r["checkpoint"] for r in by_rank] == sorted(expected, key=expected.get)
    table = ok(run(*args))
    rows = [line for line in table.splitlines() if ".npz" in line]
    assert [next(n for n in expected if n in row) for row in rows] == sorted(
        expected, key=expected.get
    )


def test_a_narrow_table_wraps_long_paths_instead_of_cutting_them(tmp_path, monkeypatch):
    deep = tmp_path / "runs" / "a-rather-long-folder-name" / "and-another-one"
    deep.mkdir(parents=True)
    make_checkpoint(deep / "poems-best.npz")
    (tmp_path / "t.txt").write_text(TEXT)
    monkeypatch.setenv("COLUMNS", "80")
    out = ok(run("t.txt", "-c", str(deep / "poems-best.npz")))
    assert max(len(line) for line in out.splitlines()) <= 80
    first = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") > 2]
    assert "".join(first) == str(deep / "poems-best.npz")  # every piece of it, in order


# --------------------------------------------------------------------------------- --show


def test_show_writes_tsv_of_characters_and_bits_when_not_a_terminal(tmp_path):
    text = "All:\nSpeak, speak.\tFirst"
    vocab_text = TEXT + "\t"
    params, cfg = make_checkpoint(tmp_path / "m.npz", vocab_text)
    (tmp_path / "t.txt").write_text(text)
    lines = ok(run("t.txt", "-c", "m.npz", "--show")).split("\n")
    assert lines[0] == "char\tbits" and lines[-1] == ""
    rows = [line.split("\t") for line in lines[1:-1]]
    assert len(rows) == len(text) and all(len(r) == 2 for r in rows)
    unescape = {"\\n": "\n", "\\t": "\t", "␠": " "}
    assert "".join(unescape.get(c, c) for c, _ in rows) == text
    assert rows[0][1] == ""  # the first character is context, not scored
    nll, _ = reference(params, cfg, ids_of(text, vocab_text))
    bits = np.array([float(b) for _, b in rows[1:]])
    np.testing.assert_allclose(bits, nll / math.log(2), atol=2e-5)


# --------------------------------------------------------------------------------- errors


def test_nan_weights_are_refused(tmp_path):
    vocab = Vocab.from_text(TEXT)
    cfg = ModelConfig(cell="lstm", vocab_size=len(vocab), hidden=8, layers=1)
    params = {k: np.zeros(s, np.float32) for k, s in param_shapes(cfg).items()}
    params["weight_hh_l0"][0, 0] = np.inf
    save(tmp_path / "nan.npz", Checkpoint(cfg, params, vocab, {}))
    (tmp_path / "t.txt").write_text(TEXT)
    err = one_line_error(run("t.txt", "-c", "nan.npz"), 1)
    assert "NaN or infinite" in err and "weight_hh_l0" in err


@pytest.mark.parametrize("kind", ["missing", "truncated", "not-npz", "newer"])
def test_bad_checkpoint_files_give_one_line(tmp_path, kind):
    make_checkpoint(tmp_path / "good.npz")
    (tmp_path / "t.txt").write_text(TEXT)
    bad = tmp_path / "bad.npz"
    if kind == "truncated":
        data = (tmp_path / "good.npz").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "not-npz":
        bad.write_text("hello")
    elif kind == "newer":
        np.savez(bad, meta=np.array(json.dumps({"format_version": 99})))
    err = one_line_error(run("t.txt", "-c", "good.npz", "-c", str(bad)), 1)
    assert "bad.npz" in err


def test_no_checkpoint_anywhere(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    err = one_line_error(run("t.txt"), 1)
    assert "checkpoints" in err


@pytest.mark.parametrize(
    "args",
    [
        ["--unk", "maybe"],
        ["--show", "--json"],
        ["--show", "-c", "m.npz"],
        ["--threads", "-1"],
        ["--streams", "-1"],
        ["--burn-in", "-1"],
    ],
)
def test_bad_options_are_usage_errors(tmp_path, args):
    make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_text(TEXT)
    one_line_error(run("t.txt", "-c", "m.npz", *args), 2)


def test_a_text_too_short_to_score(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_text("A")
    err = one_line_error(run("t.txt", "-c", "m.npz"), 1)
    assert "at least 2" in err


def test_missing_text_file(tmp_path):
    make_checkpoint(tmp_path / "m.npz")
    err = one_line_error(run("nope.txt", "-c", "m.npz"), 1)
    assert "nope.txt" in err


def test_help_has_an_example():
    out = ok(run("--help"))
    assert "Example" in out and "charrnn eval" in out


def test_an_interrupted_segmented_pass_stops_its_row_groups(tmp_path, monkeypatch):
    """A KeyboardInterrupt while the per-core groups run: it reaches the caller, and the groups
    stop at their next chunk instead of finishing the text."""
    import time

    params, cfg = make_checkpoint(tmp_path / "m.npz", scale=0.3)
    model = CharRNN.from_params(cfg, params)
    ids = _long_ids(60_000, cfg.vocab_size)
    chunks = []
    guess = ev._guess

    def counting(model, g, rows, *rest):
        real_nll = model.nll

        def nll(*a, **k):
            chunks.append(rows.start)
            time.sleep(0.01)  # a bigger model's pace: the whole pass takes about a second
            return real_nll(*a, **k)

        model.nll = nll
        return guess(model, g, rows, *rest)

    def interrupt(done):
        if done > 2_000:
            raise KeyboardInterrupt

    monkeypatch.setattr(ev, "_guess", counting)
    with pytest.raises(KeyboardInterrupt):
        score_ids(model, ids, streams=16, burn_in=256, check=64, threads=2, progress=interrupt)
    S, R = ev._segments(ids.size - 1, 16, 256, 64)
    total = 2 * R // 64  # calls of both groups had they run to the end
    assert S == 16 and 0 < len(chunks) < 0.8 * total


def test_the_cli_burn_in_default_is_the_engines():
    import inspect as pyinspect

    from charrnn.commands import evaluate as cmd

    default = pyinspect.signature(cmd.command).parameters["burn_in"].default.default
    assert default == ev.DEFAULT_BURN_IN
