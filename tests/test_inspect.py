"""`charrnn inspect` through the CLI: the summary (--json and the terminal view), hidden units over
a text (--neuron, --top-neurons) checked against a naive NumPy model, and the error cases."""

import json
import math

import numpy as np
import pytest
from cli_asserts import ok, one_line_error
from test_evaluate import TEXT, ids_of, make_checkpoint, reference
from typer.testing import CliRunner

from charrnn.checkpoint import Checkpoint, save
from charrnn.cli import app
from charrnn.config import ModelConfig, TrainConfig, param_shapes
from charrnn.vocab import Vocab

HISTORY = {
    "step": [10, 20, 30],
    "epoch": [0.5, 1.0, 1.5],
    "train_loss": [3.1, 2.6, 2.2],
    "val_loss": [3.0, 2.7, 2.4],
    "lr": [0.002, 0.002, 0.001],
    "elapsed": [1.5, 3.0, 4.5],
}


def training_meta() -> dict:
    """What `charrnn train` writes in meta (see train.Run.to_checkpoint), by hand."""
    return {
        "kind": "best",
        "name": "poems",
        "run_id": "abc",
        "train_config": TrainConfig(optimizer="rmsprop").to_dict(),
        "step": 30,
        "epoch": 1.5,
        "optimizer": "rmsprop",
        "lr": 0.001,
        "best_val_loss": 2.4,
        "best_step": 30,
        "history": HISTORY,
        "corpus": {
            "name": "poems.txt",
            "sha256": "ab" * 32,
            "chars": 1234,
            "bytes": 1300,
            "sources": ["/data/poems.txt"],
        },
        "elapsed_seconds": 4.5,
        "chars_seen": 150000,
        "chars_per_second": 33333.0,
    }


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def run(*args: str, input=None):
    return CliRunner().invoke(app, ["inspect", *args], input=input, catch_exceptions=False)


# --------------------------------------------------------------------------------- summary


def expected_params(cfg: ModelConfig) -> int:
    """Parameter count from the architecture, written out independently of param_shapes."""
    g = {"rnn": 1, "lstm": 4, "gru": 3}[cfg.cell]
    h, v = cfg.hidden, cfg.vocab_size
    total = v * cfg.embed if cfg.embed else 0
    for k in range(cfg.layers):
        inp = (cfg.embed or v) if k == 0 else h
        total += g * h * (inp + h + 2)
    return total + v * h + v


@pytest.mark.parametrize("arch", [{"cell": "lstm"}, {"cell": "gru", "embed": 6, "layers": 3}])
def test_json_holds_everything(tmp_path, arch):
    text = TEXT + "\x01é"
    params, cfg = make_checkpoint(tmp_path / "p.npz", text, meta=training_meta(), **arch)
    info = json.loads(ok(run("p.npz", "--json")))
    assert info["path"] == "p.npz" and info["name"] == "poems" and info["kind"] == "best"
    assert info["format_version"] == 1 and isinstance(info["charrnn_version"], str)
    assert info["model"] == cfg.to_dict()
    names = [t["name"] for t in info["tensors"]]
    assert names == list(param_shapes(cfg))
    for t in info["tensors"]:
        assert tuple(t["shape"]) == params[t["name"]].shape
        assert t["params"] == math.prod(t["shape"]) and t["dtype"] == "float32"
    assert sum(t["params"] for t in info["tensors"]) == info["total_params"]
    assert info["total_params"] == expected_params(cfg)
    symbols = info["vocab"]["symbols"]
    assert info["vocab"]["size"] == len(symbols) == len(set(text))
    assert symbols[:3] == ["U+0001", "\\n", "␠"] and symbols[-1] == "é"
    assert info["step"] == 30 and info["epoch"] == 1.5
    assert info["optimizer"] == "rmsprop" and info["lr"] == 0.001
    assert info["corpus"] == training_meta()["corpus"]
    assert info["best_val_loss"] == 2.4
    assert info["best_val_bpc"] == pytest.approx(2.4 / math.log(2))
    assert info["elapsed_seconds"] == 4.5 and info["chars_per_second"] == 33333.0
    assert info["history"] == HISTORY
    assert info["nonfinite_tensors"] == []


def test_terminal_view_shows_the_parts_and_the_chart(tmp_path):
    _, cfg = make_checkpoint(tmp_path / "p.npz", meta=training_meta())
    out = ok(run("p.npz"))
    for part in ("poems", "lstm", "weight_hh_l1", "decoder.bias", "rmsprop", "poems.txt"):
        assert part in out, part
    assert f"{expected_params(cfg):,}" in out
    assert "2.4000 nats/char" in out and f"{2.4 / math.log(2):.4f} bits/char" in out
    assert "33,333 chars/s" in out and "ab" * 32 in out
    assert "loss history" in out and "t = train" in out and "v = val" in out
    assert "3.100" in out and "2.200" in out  # the chart's y axis: max and min of the losses


@pytest.mark.parametrize("width", ["61", "80", "200"])
def test_a_vocabulary_of_wide_characters_is_shown_whole(tmp_path, monkeypatch, width):
    """CJK and emoji take two columns each: wrapped, never cut with an ellipsis."""
    text = "天地玄黃，宇宙洪荒。日月盈昃，辰宿列張。寒來暑往，秋收冬藏。閏餘成歲 🖤🐍 abc\n" * 2
    make_checkpoint(tmp_path / "w.npz", text)
    monkeypatch.setenv("COLUMNS", width)
    out = ok(run("w.npz"))
    assert "…" not in out
    for ch in set(text) - {" ", "\n"}:
        assert ch in out, ch


def test_a_checkpoint_without_training_meta_still_shows(tmp_path):
    make_checkpoint(tmp_path / "bare.npz", meta={})
    out = ok(run("bare.npz"))
    assert "loss history: none recorded" in out
    info = json.loads(ok(run("bare.npz", "--json")))
    assert info["step"] is None and info["best_val_loss"] is None
    assert info["history"]["val_loss"] == []


def test_nan_weights_are_reported_not_hidden(tmp_path):
    vocab = Vocab.from_text(TEXT)
    cfg = ModelConfig(cell="lstm", vocab_size=len(vocab), hidden=8, layers=1)
    params = {k: np.zeros(s, np.float32) for k, s in param_shapes(cfg).items()}
    params["decoder.bias"][0] = np.nan
    save(tmp_path / "nan.npz", Checkpoint(cfg, params, vocab, {}))
    info = json.loads(ok(run("nan.npz", "--json")))
    assert info["nonfinite_tensors"] == ["decoder.bias"]
    (tmp_path / "t.txt").write_text(TEXT)
    err = one_line_error(run("nan.npz", "--neuron", "0", "--text", "t.txt"), 1)
    assert "NaN or infinite" in err


# --------------------------------------------------------------------------------- units


def tsv(out: str) -> list[list[str]]:
    lines = out.split("\n")
    assert lines[-1] == ""
    return [line.split("\t") for line in lines[:-1]]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_neuron_tsv_values_are_the_models_hidden_activations(tmp_path, cell):
    params, cfg = make_checkpoint(tmp_path / "p.npz", cell=cell, layers=2, hidden=10)
    text = TEXT[:90]
    (tmp_path / "t.txt").write_text(text)
    _, hidden = reference(params, cfg, ids_of(text))
    for layer_args, layer in (([], 1), (["--layer", "0"], 0)):
        rows = tsv(ok(run("p.npz", "--neuron", "7", *layer_args, "--text", "t.txt")))
        assert rows[0] == ["char", "activation"]
        assert len(rows) == len(text) + 1
        unescape = {"\\n": "\n", "␠": " "}
        assert "".join(unescape.get(c, c) for c, _ in rows[1:]) == text
        acts = np.array([float(a) for _, a in rows[1:]])
        np.testing.assert_allclose(acts, hidden[layer][:, 7], atol=2e-6)


def test_neuron_json(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "p.npz")
    (tmp_path / "t.txt").write_text(TEXT)
    _, hidden = reference(params, cfg, ids_of(TEXT))
    obj = json.loads(ok(run("p.npz", "--neuron", "3", "--text", "t.txt", "--json")))
    assert obj["layer"] == 1 and obj["neuron"] == 3 and "".join(obj["chars"]) == TEXT
    np.testing.assert_allclose(obj["activations"], hidden[1][:, 3], atol=2e-6)


def test_the_text_is_read_in_chunks_with_the_state_carried(tmp_path):
    """A text longer than one forward chunk gives the same activations as the naive pass."""
    from charrnn.inspection import unit_activations, unit_stats
    from charrnn.model import CharRNN

    params, cfg = make_checkpoint(tmp_path / "p.npz", cell="rnn")
    model = CharRNN.from_params(cfg, params)
    ids = np.array(ids_of(TEXT), np.uint8)
    _, hidden = reference(params, cfg, ids.tolist())
    np.testing.assert_allclose(
        unit_activations(model, ids, 0, 5, chunk=13), hidden[0][:, 5], atol=2e-6
    )
    s = unit_stats(model, ids, 1, chunk=17)
    np.testing.assert_allclose(s.std, hidden[1].std(axis=0), atol=1e-6)
    np.testing.assert_allclose(s.mean, hidden[1].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(s.min, hidden[1].min(axis=0), atol=2e-6)
    np.testing.assert_allclose(s.max, hidden[1].max(axis=0), atol=2e-6)


def test_top_neurons_are_ordered_by_std(tmp_path):
    params, cfg = make_checkpoint(tmp_path / "p.npz", hidden=16, scale=0.6)
    (tmp_path / "t.txt").write_text(TEXT)
    _, hidden = reference(params, cfg, ids_of(TEXT))
    for layer in (0, 1):
        std = hidden[layer].std(axis=0)
        want = [int(j) for j in np.argsort(-std, kind="stable")[:5]]
        obj = json.loads(
            ok(
                run(
                    "p.npz",
                    "--top-neurons",
                    "5",
                    "--layer",
                    str(layer),
                    "--text",
                    "t.txt",
                    "--json",
                )
            )
        )
        assert obj["layer"] == layer and obj["chars"] == len(TEXT)
        assert [n["unit"] for n in obj["neurons"]] == want
        np.testing.assert_allclose([n["std"] for n in obj["neurons"]], std[want], atol=1e-6)
        np.testing.assert_allclose(
            [n["max"] for n in obj["neurons"]], hidden[layer][:, want].max(axis=0), atol=2e-6
        )
    table = ok(run("p.npz", "--top-neurons", "3", "--text", "t.txt"))
    std = hidden[1].std(axis=0)
    top = [int(j) for j in np.argsort(-std, kind="stable")[:3]]
    rows = [line.split() for line in table.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[2]) for r in rows] == top  # "# │ unit │ std ..."
    # more units than the layer has: all of them
    obj = json.loads(ok(run("p.npz", "--top-neurons", "99", "--text", "t.txt", "--json")))
    assert sorted(n["unit"] for n in obj["neurons"]) == list(range(16))


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args",
    [
        ["--neuron", "12", "--text", "t.txt"],  # H = 12: units 0..11
        ["--neuron", "-1", "--text", "t.txt"],
        ["--neuron", "0", "--layer", "2", "--text", "t.txt"],  # 2 layers
        ["--top-neurons", "0", "--text", "t.txt"],
        ["--neuron", "0"],  # no --text
        ["--neuron", "0", "--top-neurons", "2", "--text", "t.txt"],
        ["--layer", "0"],
        ["--neuron", "0", "--text", "t.txt", "--unk", "maybe"],
    ],
)
def test_bad_option_values_are_usage_errors(tmp_path, args):
    make_checkpoint(tmp_path / "p.npz")
    (tmp_path / "t.txt").write_text(TEXT)
    one_line_error(run("p.npz", *args), 2)


@pytest.mark.parametrize("kind", ["missing", "truncated", "not-npz", "newer", "directory"])
def test_bad_checkpoint_files_give_one_line(tmp_path, kind):
    make_checkpoint(tmp_path / "good.npz")
    bad = tmp_path / "bad.npz"
    if kind == "truncated":
        data = (tmp_path / "good.npz").read_bytes()
        bad.write_bytes(data[: len(data) - 100])
    elif kind == "not-npz":
        bad.write_text("not a checkpoint\n")
    elif kind == "newer":
        np.savez(bad, meta=np.array(json.dumps({"format_version": 99})))
    elif kind == "directory":
        bad.mkdir()
    err = one_line_error(run(str(bad)), 1)
    assert "bad.npz" in err
    if kind == "newer":
        assert "newer" in err


def test_unknown_characters_in_the_text(tmp_path):
    make_checkpoint(tmp_path / "p.npz")
    (tmp_path / "t.txt").write_text("All: «speak»")
    err = one_line_error(run("p.npz", "--neuron", "0", "--text", "t.txt"), 1)
    assert "«" in err and "»" in err
    rows = tsv(ok(run("p.npz", "--neuron", "0", "--text", "t.txt", "--unk", "skip")))
    assert len(rows) == 1 + len("All: speak")


def test_every_command_help_has_an_example():
    for cmd in ("train", "sample", "eval", "inspect"):
        out = CliRunner().invoke(app, [cmd, "--help"]).stdout
        assert "Example" in out and f"charrnn {cmd}" in out, cmd
