"""Checkpoint save/load: bit-exact round trips, every refusal a one-line CheckpointError,
atomic writes that never damage the previous file, and picking the checkpoint to use."""

from __future__ import annotations

import errno
import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import charrnn
from charrnn import checkpoint as ckmod
from charrnn.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    checkpoint_paths,
    find_checkpoint,
    load,
    save,
)
from charrnn.config import ModelConfig, param_shapes, state_names
from charrnn.errors import CheckpointError
from charrnn.vocab import Vocab

# --- builders -----------------------------------------------------------------------------------

WIDE_CODEPOINTS = [0x0A, 0x20, 0x41, 0xE9, 0x4E2D, 0x6587, 0x1F600, 0x10FFFF]  # \n ... 中 文 😀


def random_bits(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """Arbitrary bit patterns: NaNs with payloads, infinities, subnormals, negative zero."""
    dtype = np.dtype(dtype)
    udt = {4: np.uint32, 8: np.uint64}[dtype.itemsize]
    return rng.integers(0, np.iinfo(udt).max, size=shape, dtype=udt, endpoint=True).view(dtype)


def make_ckpt(
    cfg: ModelConfig | None = None,
    *,
    seed: int = 0,
    dtype=np.float32,
    bits: bool = False,
    batch: int = 2,
    meta: dict | None = None,
) -> Checkpoint:
    cfg = cfg or ModelConfig(cell="lstm", vocab_size=len(WIDE_CODEPOINTS), hidden=3, layers=2)
    rng = np.random.default_rng(seed)
    if cfg.vocab_size == len(WIDE_CODEPOINTS):
        cps = WIDE_CODEPOINTS
    else:
        cps = np.sort(rng.choice(0x110000, size=cfg.vocab_size, replace=False))

    def arr(shape):
        if bits:
            return random_bits(rng, shape, dtype)
        return rng.standard_normal(shape).astype(dtype)

    params = {k: arr(s) for k, s in param_shapes(cfg).items()}
    size = sum(a.size for a in params.values())
    optim = {"m": arr((size,)), "v": arr((size,)), "step": np.array(7, dtype=np.int64)}
    state = {n: arr((cfg.layers, batch, cfg.hidden)) for n in state_names(cfg)}
    meta = {"name": "tiny", "kind": "latest", "step": 7} if meta is None else meta
    return Checkpoint(cfg, params, Vocab(cps), meta, optim, state)


def stored_meta(ckpt: Checkpoint) -> dict:
    """What load should return as meta: the caller's meta plus the three keys save adds."""
    return {
        **json.loads(json.dumps(ckpt.meta)),
        "format_version": 2 if ckpt.vocab.is_bytes else 1,
        "charrnn_version": charrnn.__version__,
        "model_config": ckpt.config.to_dict(),
    }


def assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k  # bit for bit, NaN payloads included


def read_members(path: Path) -> dict[str, np.ndarray]:
    """The raw npz members of a (valid) file, to be tampered with by a test."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_members(path: Path, members: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **members)
    return path


def meta_of(members: dict[str, np.ndarray]) -> dict:
    return json.loads(str(members["meta"][()]))


def with_meta(members: dict[str, np.ndarray], meta) -> dict[str, np.ndarray]:
    out = dict(members)
    out["meta"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    return out


@pytest.fixture
def saved(tmp_path) -> tuple[Path, Checkpoint]:
    ckpt = make_ckpt(bits=True)
    path = tmp_path / "tiny-latest.npz"
    save(path, ckpt)
    return path, ckpt


def refused(path: Path, *fragments: str) -> str:
    """Assert load(path) raises one line of CheckpointError naming the file and `fragments`."""
    with pytest.raises(CheckpointError) as info:
        load(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_bit_for_bit(tmp_path, dtype):
    meta = {
        "name": "中文-😀",
        "history": {"step": [1, 2], "val_loss": [2.5, None]},
        "rng_state": {"state": 2**127 + 12345, "inc": 2**64 + 1},
        "betas": (0.9, 0.999),
        "best_val_loss": math.inf,
        "flag": True,
    }
    ckpt = make_ckpt(dtype=dtype, bits=True, meta=meta)
    n_nan = sum(int(np.isnan(a).sum()) for a in ckpt.params.values())
    assert n_nan > 0  # the random bit patterns do exercise NaN payloads
    path = tmp_path / "a.npz"
    save(path, ckpt)
    back = load(path)
    assert back.config == ckpt.config
    assert back.vocab == ckpt.vocab
    assert back.vocab.chars == ["\n", " ", "A", "é", "中", "文", "😀", chr(0x10FFFF)]
    assert_same_arrays(back.params, ckpt.params)
    assert_same_arrays(back.optim, ckpt.optim)
    assert_same_arrays(back.state, ckpt.state)
    assert back.meta == stored_meta(ckpt)
    assert back.meta["betas"] == [0.9, 0.999]
    assert back.name == "中文-😀"
    assert ckpt.meta == meta  # save leaves the caller's meta alone
    for a in back.params.values():
        assert a.flags.c_contiguous and a.flags.writeable and a.flags.owndata


def test_file_layout_is_plain_npz(saved):
    path, ckpt = saved
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    names = {i.filename for i in infos}
    expected = {f"param/{k}.npy" for k in ckpt.params}
    expected |= {f"optim/{k}.npy" for k in ckpt.optim}
    expected |= {f"state/{k}.npy" for k in ckpt.state}
    assert names == expected | {"vocab.npy", "meta.npy"}
    m = read_members(path)
    assert m["vocab"].dtype == np.int32
    assert m["vocab"].tolist() == WIDE_CODEPOINTS
    assert m["meta"].ndim == 0 and m["meta"].dtype.kind == "U"
    assert meta_of(m)["model_config"] == ckpt.config.to_dict()


def test_load_closes_the_file(saved):
    path, _ = saved

    def open_fds() -> list[str]:
        out = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                out.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return out

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc")
    load(path)
    assert str(path) not in open_fds()


def test_empty_optim_and_state_round_trip(tmp_path):
    cfg = ModelConfig(cell="gru", vocab_size=3, hidden=2, layers=1, embed=2)
    ckpt = make_ckpt(cfg)
    ckpt.state = {}
    ckpt.optim = {"empty": np.zeros((0, 3), np.float32)}
    save(tmp_path / "g.npz", ckpt)
    back = load(tmp_path / "g.npz")
    assert back.state == {}
    assert back.optim["empty"].shape == (0, 3) and back.optim["empty"].dtype == np.float32
    ckpt.optim = {}
    save(tmp_path / "g.npz", ckpt)
    assert load(tmp_path / "g.npz").optim == {}
    assert set(back.params) == set(param_shapes(cfg))


def test_big_endian_and_fortran_order_members_load_as_native(saved, tmp_path):
    path, ckpt = saved
    m = read_members(path)
    w = "weight_ih_l0"
    m[f"param/{w}"] = np.asfortranarray(m[f"param/{w}"]).astype(">f4")
    write_members(tmp_path / "be.npz", m)
    back = load(tmp_path / "be.npz")
    assert back.params[w].dtype == np.float32 and back.params[w].flags.c_contiguous
    assert back.params[w].tobytes() == ckpt.params[w].tobytes()


def test_has_nonfinite_names_the_tensors(tmp_path):
    ckpt = make_ckpt()
    assert ckpt.has_nonfinite() == []
    ckpt.params["decoder.bias"][1] = np.nan
    ckpt.params["weight_hh_l1"][0, 0] = -np.inf
    save(tmp_path / "n.npz", ckpt)
    back = load(tmp_path / "n.npz")  # allowed by load: the caller decides
    assert sorted(back.has_nonfinite()) == ["decoder.bias", "weight_hh_l1"]


def test_checkpoint_paths_and_name():
    latest, best = checkpoint_paths(Path("out"), "shakespeare")
    assert latest == Path("out/shakespeare-latest.npz")
    assert best == Path("out/shakespeare-best.npz")
    assert make_ckpt(meta={}).name is None


configs = st.builds(
    ModelConfig,
    cell=st.sampled_from(["rnn", "lstm", "gru"]),
    vocab_size=st.integers(1, 6),
    hidden=st.integers(1, 4),
    layers=st.integers(1, 3),
    embed=st.integers(0, 3),
    dropout=st.sampled_from([0.0, 0.25]),
    nonlinearity=st.sampled_from(["tanh", "relu"]),
    forget_bias=st.sampled_from([None, 1.0]),
)


@settings(max_examples=40, deadline=None)
@given(
    cfg=configs,
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
    batch=st.integers(1, 3),
    meta=st.dictionaries(
        st.text(max_size=5),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
            max_leaves=8,
        ),
        max_size=4,
    ),
)
def test_round_trip_property(cfg, seed, dtype, batch, meta):
    ckpt = make_ckpt(cfg, seed=seed, dtype=dtype, bits=True, batch=batch, meta=meta)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.npz"
        save(path, ckpt)
        back = load(path)
    assert back.config == cfg
    assert back.vocab == ckpt.vocab
    assert_same_arrays(back.params, ckpt.params)
    assert_same_arrays(back.optim, ckpt.optim)
    assert_same_arrays(back.state, ckpt.state)
    assert back.meta == stored_meta(ckpt)


# --- save refuses bugs --------------------------------------------------------------------------


def test_save_refuses_object_arrays_and_bad_meta(tmp_path):
    path = tmp_path / "x.npz"
    bad = make_ckpt()
    bad.optim["junk"] = np.array([object()], dtype=object)
    with pytest.raises(TypeError, match="junk"):
        save(path, bad)
    for meta, where in [
        ({"a": {1, 2}}, "meta['a']"),
        ({"a": [np.float32(1)]}, "meta['a'][0]"),
        ({"a": {3: "x"}}, "key 3"),
        ({"a": object()}, "meta['a']"),
    ]:
        with pytest.raises(TypeError) as info:
            save(path, make_ckpt(meta=meta))
        assert where in str(info.value)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_inconsistent_checkpoints(tmp_path):
    path = tmp_path / "x.npz"
    c = make_ckpt()
    c.params["decoder.bias"] = c.params["decoder.bias"][:-1]
    with pytest.raises(ValueError, match="decoder.bias"):
        save(path, c)
    c = make_ckpt()
    c.params["extra"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="extra"):
        save(path, c)
    c = make_ckpt()
    c.params["decoder.bias"] = c.params["decoder.bias"].astype(np.float16)
    with pytest.raises(ValueError, match="float16"):
        save(path, c)
    c = make_ckpt()
    c.vocab = Vocab([65, 66])
    with pytest.raises(ValueError, match="vocabulary"):
        save(path, c)
    c = make_ckpt()
    c.state["h"] = c.state["h"][:, :, :-1]
    with pytest.raises(ValueError, match="state 'h'"):
        save(path, c)
    c = make_ckpt()
    c.state["h"] = c.state["h"].astype(np.int32)
    with pytest.raises(ValueError, match="state 'h' has dtype int32"):
        save(path, c)
    c = make_ckpt()
    c.config = ModelConfig(cell="lstm", vocab_size=0)
    with pytest.raises(ValueError, match="vocab_size"):
        save(path, c)
    c = make_ckpt()
    c.params["decoder.bias"] = c.params["decoder.bias"].tolist()
    with pytest.raises(TypeError, match="numpy array"):
        save(path, c)
    assert not path.exists()


# --- load refuses bad files ---------------------------------------------------------------------


def test_refuses_missing_file_and_directory(tmp_path):
    refused(tmp_path / "nope.npz", "does not exist", "charrnn train")
    refused(tmp_path, "is a directory")


def test_refuses_empty_random_and_text_files(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    refused(empty, "empty")
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    refused(noise, "not a charrnn checkpoint")
    text = tmp_path / "text.npz"
    text.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n")
    refused(text, "not a charrnn checkpoint")
    plain_npy = tmp_path / "array.npz"
    with open(plain_npy, "wb") as f:
        np.save(f, np.zeros(3))
    refused(plain_npy, "not a charrnn checkpoint")


def test_refuses_truncated_files_at_many_offsets(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    n = len(data)
    offsets = sorted({0, 1, 2, 3, 4, 10, 30, 64, 100, n // 4, n // 3, n // 2, 2 * n // 3})
    offsets += [n - 200, n - 100, n - 50, n - 22, n - 21, n - 10, n - 2, n - 1]
    assert len(offsets) >= 20
    cut = tmp_path / "cut.npz"
    for k in offsets:
        cut.write_bytes(data[:k])
        with pytest.raises(CheckpointError) as info:
            load(cut)
        assert str(cut) in str(info.value) and "\n" not in str(info.value), k


_UNPICKLED: list[str] = []


def _unpickle_trap() -> int:
    _UNPICKLED.append("unpickled")
    return 0


class Trap:
    """Pickles to a call of _unpickle_trap: loading it would append to _UNPICKLED."""

    def __reduce__(self):
        return (_unpickle_trap, ())


def test_refuses_object_arrays_without_unpickling(saved, tmp_path):
    path, _ = saved
    m = read_members(path)
    m["optim/m"] = np.array([Trap(), Trap()], dtype=object)
    bad = write_members(tmp_path / "pickled.npz", m)  # np.savez pickles it (allow_pickle=True)
    _UNPICKLED.clear()
    refused(bad, "Python objects", "optim/m")
    assert _UNPICKLED == []
    # positive control: the trap does fire when something unpickles the same file
    with np.load(bad, allow_pickle=True) as z:
        z["optim/m"]
    assert _UNPICKLED == ["unpickled", "unpickled"]
    _UNPICKLED.clear()


def test_refuses_future_format_and_bad_meta(saved, tmp_path):
    path, _ = saved
    m = read_members(path)
    meta = meta_of(m)
    p = tmp_path / "bad.npz"

    write_members(p, with_meta(m, {**meta, "format_version": FORMAT_VERSION + 1}))
    refused(p, f"newer charrnn (format {FORMAT_VERSION + 1}", "upgrade charrnn")

    write_members(p, with_meta(m, {k: v for k, v in meta.items() if k != "format_version"}))
    refused(p, "format_version")
    write_members(p, with_meta(m, {**meta, "format_version": "1"}))
    refused(p, "format_version")

    write_members(p, {k: v for k, v in m.items() if k != "meta"})
    refused(p, "no 'meta'")

    write_members(p, with_meta(m, '{"format_version": 1, '))
    refused(p, "not valid JSON")
    write_members(p, with_meta(m, "[1, 2]"))
    refused(p, "not a JSON object")
    write_members(p, {**m, "meta": np.array([1, 2])})
    refused(p, "'meta'")
    write_members(p, with_meta(m, "[" * 100_000 + "]" * 100_000))
    refused(p, "JSON")


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"cell": "transformer"}, "unknown model"),
        ({"colour": "blue"}, "unknown fields"),
        ({"hidden": "3"}, "'hidden'"),
        ({"hidden": True}, "'hidden'"),
        ({"layers": 0}, "layers must be at least 1"),
        ({"dropout": 1.5}, "dropout"),
        ({"layers": 10**12}, "layers"),
        (None, "model_config"),
    ],
)
def test_refuses_bad_model_config(saved, tmp_path, change, fragment):
    path, _ = saved
    m = read_members(path)
    meta = meta_of(m)
    if change is None:
        meta["model_config"] = [1, 2]
    else:
        meta["model_config"].update(change)
    p = write_members(tmp_path / "cfg.npz", with_meta(m, meta))
    refused(p, fragment)


def test_refuses_config_that_does_not_fit_the_tensors(saved, tmp_path):
    path, _ = saved
    m = read_members(path)
    meta = meta_of(m)
    meta["model_config"]["hidden"] = 4
    p = write_members(tmp_path / "cfg.npz", with_meta(m, meta))
    refused(p, "weight_ih_l0", "(16, 8)")  # the first tensor checked names both shapes


def test_refuses_vocab_problems(saved, tmp_path):
    path, _ = saved
    m = read_members(path)
    p = tmp_path / "v.npz"
    v = m["vocab"]
    for bad, fragment in [
        (v.astype(np.int64), "int64"),
        (v.astype(np.float32), "float32"),
        (v.reshape(2, -1), "(2, 4)"),
        (v[::-1].copy(), "not sorted"),
        (np.concatenate([v[:-1], v[-2:-1]]), "not sorted"),
        (v[:-1].copy(), "vocabulary has 7 symbols, the model config says 8"),
        (np.array([-1, *v[1:]], dtype=np.int32), "not Unicode code points"),
    ]:
        write_members(p, {**m, "vocab": bad})
        refused(p, fragment)
    write_members(p, {k: a for k, a in m.items() if k != "vocab"})
    refused(p, "no 'vocab'")


def test_refuses_tensor_problems(saved, tmp_path):
    path, _ = saved
    m = read_members(path)
    p = tmp_path / "t.npz"
    cases = [
        ({k: a for k, a in m.items() if k != "param/weight_hh_l1"}, "'weight_hh_l1' is missing"),
        ({**m, "param/encoder.weight": np.zeros((8, 2), np.float32)}, "'encoder.weight' is not"),
        ({**m, "param/decoder.bias": np.zeros(9, np.float32)}, "has shape (9,)"),
        ({**m, "param/decoder.bias": np.zeros((8, 1), np.float32)}, "has shape (8, 1)"),
        ({**m, "param/decoder.bias": np.zeros(8, np.int32)}, "dtype int32"),
        ({**m, "param/decoder.bias": np.zeros(8, np.float16)}, "dtype float16"),
        ({**m, "param/decoder.bias": np.zeros(8, np.complex64)}, "unsupported dtype"),
        ({**m, "param/decoder.bias": np.zeros(8, np.float64)}, "mix float32 and float64"),
        ({**m, "param/decoder.bias": np.zeros(8, "S4")}, "unsupported dtype"),
        ({**m, "state/h": np.zeros((2, 2, 4), np.float32)}, "state 'h' has shape (2, 2, 4)"),
        ({**m, "state/h": np.zeros((2, 3, 3), np.float32)}, "one batch size"),
        ({k: a for k, a in m.items() if k != "state/c"}, "needs ['h', 'c']"),
        ({**m, "optim/m": np.array(["a"])}, "optimizer state 'm'"),
        ({**m, "extra": np.zeros(1)}, "unexpected entry 'extra'"),
        ({**m, "param/": np.zeros(1)}, "unexpected entry 'param/'"),
    ]
    for members, fragment in cases:
        write_members(p, members)
        refused(p, fragment)


def _write_zip(path: Path, entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _entries(members: dict[str, np.ndarray]) -> dict[str, bytes]:
    return {f"{k}.npy": _npy_bytes(a) for k, a in members.items()}


def test_refuses_crafted_archives(saved, tmp_path):
    path, _ = saved
    entries = _entries(read_members(path))
    p = tmp_path / "crafted.npz"

    _write_zip(p, entries, zipfile.ZIP_DEFLATED)
    refused(p, "compressed", "savez_compressed")

    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(p, "w") as zf:
            for name, data in [*entries.items(), ("vocab.npy", entries["vocab.npy"])]:
                zf.writestr(name, data)
    refused(p, "'vocab.npy' appears twice")

    _write_zip(p, {**entries, "README.txt": b"hello"})
    refused(p, "'README.txt'")

    # a header claiming 4 TB of data must be refused before anything is allocated
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    )
    _write_zip(p, {**entries, "param/decoder.bias.npy": head.getvalue() + b"\0" * 32})
    refused(p, "'param/decoder.bias'", "bytes")

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f4", "fortran_order": False, "shape": (-8,)}
    )
    _write_zip(p, {**entries, "param/decoder.bias.npy": head.getvalue()})
    refused(p, "negative")

    bad_magic = b"\x93NUMPY\x09\x00" + entries["param/decoder.bias.npy"][8:]
    _write_zip(p, {**entries, "param/decoder.bias.npy": bad_magic})
    refused(p, "unsupported .npy version")


def test_refuses_too_many_members(tmp_path):
    p = tmp_path / "many.npz"
    small = _npy_bytes(np.zeros(1, np.float32))
    _write_zip(p, {f"optim/x{i}.npy": small for i in range(ckmod.MAX_MEMBERS + 1)})
    refused(p, f"{ckmod.MAX_MEMBERS + 1} entries")


def test_refuses_unreadable_file(saved, monkeypatch):
    path, _ = saved
    real_open = os.open

    def deny(p, *a, **k):  # tests run as root, who may read anything: simulate a denial
        if Path(p) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_open(p, *a, **k)

    monkeypatch.setattr("os.open", deny)
    refused(path, "cannot read", "Permission denied")


def test_refuses_a_named_pipe_without_waiting_for_a_writer(tmp_path):
    import threading

    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    done = []
    t = threading.Thread(target=lambda: done.append(refused(fifo, "not a checkpoint file")))
    t.daemon = True  # if open() blocked on the pipe, the test fails instead of hanging
    t.start()
    t.join(20)
    assert done and "named pipe" in done[0]


# --- atomic save --------------------------------------------------------------------------------


def _failing_open(monkeypatch, exc: BaseException, after: int):
    """Make save's temp file raise `exc` once `after` bytes have been written."""
    real = ckmod._open_new

    class Failing(io.FileIO):
        written = 0

        def write(self, b):
            if self.written + len(b) > after:
                raise exc
            self.written += len(b)
            return super().write(b)

    def fake(path):
        f, tmp = real(path)
        f.close()
        return Failing(tmp, "wb"), tmp

    monkeypatch.setattr(ckmod, "_open_new", fake)


def _only_target(path: Path) -> None:
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


@pytest.mark.parametrize("after", [0, 100, 3000])
def test_disk_full_keeps_the_previous_checkpoint(saved, monkeypatch, after):
    path, ckpt = saved
    before = path.read_bytes()
    _failing_open(monkeypatch, OSError(errno.ENOSPC, "No space left on device"), after)
    with pytest.raises(CheckpointError) as info:
        save(path, make_ckpt(seed=5))
    msg = str(info.value)
    assert msg.startswith(f"cannot write checkpoint {path}: No space left on device")
    assert "\n" not in msg
    assert path.read_bytes() == before
    assert_same_arrays(load(path).params, ckpt.params)
    _only_target(path)


def test_keyboard_interrupt_keeps_the_previous_checkpoint(saved, monkeypatch):
    path, _ = saved
    before = path.read_bytes()
    _failing_open(monkeypatch, KeyboardInterrupt(), 500)
    with pytest.raises(KeyboardInterrupt):
        save(path, make_ckpt(seed=5))
    assert path.read_bytes() == before
    _only_target(path)


@pytest.mark.parametrize("target", ["fsync", "replace"])
def test_failing_fsync_or_rename_keeps_the_previous_checkpoint(saved, monkeypatch, target):
    path, _ = saved
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ckmod.os, target, boom)
    with pytest.raises(CheckpointError, match="Input/output error"):
        save(path, make_ckpt(seed=5))
    monkeypatch.undo()
    assert path.read_bytes() == before
    _only_target(path)


def test_save_replaces_and_writes_a_hidden_temp_beside_the_target(saved, monkeypatch):
    path, _ = saved
    seen: list[Path] = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(Path(src))
        assert Path(dst) == path
        return real_replace(src, dst)

    monkeypatch.setattr(ckmod.os, "replace", spy)
    new = make_ckpt(seed=9)
    save(path, new)
    assert len(seen) == 1
    tmp = seen[0]
    assert tmp.parent == path.parent and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
    assert_same_arrays(load(path).params, new.params)
    _only_target(path)


def test_unwritable_destinations(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        save(blocker / "run-latest.npz", make_ckpt())
    target_dir = tmp_path / "is-a-dir.npz"
    target_dir.mkdir()
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        save(target_dir, make_ckpt())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "is-a-dir.npz"]

    def deny(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ckmod.os, "open", deny)
    with pytest.raises(CheckpointError) as info:
        save(tmp_path / "x.npz", make_ckpt())
    assert "Permission denied" in str(info.value) and "--out" in str(info.value)


def test_save_creates_the_directory(tmp_path):
    path = tmp_path / "deep" / "er" / "r-best.npz"
    save(path, make_ckpt())
    assert load(path).name == "tiny"


# --- find_checkpoint ----------------------------------------------------------------------------


def _touch(path: Path, mtime: int) -> None:
    path.write_bytes(b"")
    os.utime(path, (mtime, mtime))


def test_find_checkpoint_picks_the_most_recent_run(tmp_path):
    _touch(tmp_path / "old-latest.npz", 1000)
    _touch(tmp_path / "old-best.npz", 900)
    _touch(tmp_path / "new-latest.npz", 3000)
    _touch(tmp_path / "new-best.npz", 2000)  # older than new-latest, still preferred
    _touch(tmp_path / "mid-latest.npz", 2500)
    _touch(tmp_path / ".new-latest.npz.abcd.tmp", 9000)
    _touch(tmp_path / "zzz-final.npz", 9000)
    (tmp_path / "dir-best.npz").mkdir()
    os.utime(tmp_path / "dir-best.npz", (9000, 9000))
    assert find_checkpoint(tmp_path) == tmp_path / "new-best.npz"

    os.utime(tmp_path / "mid-latest.npz", (4000, 4000))
    assert find_checkpoint(tmp_path) == tmp_path / "mid-latest.npz"  # no best: its latest

    os.utime(tmp_path / "old-best.npz", (5000, 5000))
    assert find_checkpoint(str(tmp_path)) == tmp_path / "old-best.npz"


def test_find_checkpoint_run_names_with_dashes(tmp_path):
    _touch(tmp_path / "my-run-2-best.npz", 100)
    _touch(tmp_path / "my-run-2-latest.npz", 200)
    _touch(tmp_path / "my-run-best.npz", 150)
    assert find_checkpoint(tmp_path) == tmp_path / "my-run-2-best.npz"


def test_find_checkpoint_when_there_is_none(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for d in (tmp_path, tmp_path / "missing"):
        with pytest.raises(CheckpointError) as info:
            find_checkpoint(d)
        msg = str(info.value)
        assert msg.startswith(f"no checkpoint in {d}") and "--checkpoint PATH" in msg
