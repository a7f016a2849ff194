"""Fuzzing the loader: whatever the bytes, load returns a valid Checkpoint or raises one line of
CheckpointError; never another exception, never a hang (each example has a deadline)."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from charrnn.checkpoint import FORMAT_VERSION, Checkpoint, load, save
from charrnn.config import ModelConfig, param_shapes, state_names
from charrnn.errors import CheckpointError
from charrnn.vocab import Vocab

# CHARRNN_FUZZ_EXAMPLES=20000 pytest tests/test_checkpoint_fuzz.py for a longer campaign by hand
FUZZ = settings(
    max_examples=int(os.environ.get("CHARRNN_FUZZ_EXAMPLES", "150")),
    deadline=2000,  # ms per example: a hang or a runaway allocation fails the test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _valid_bytes() -> bytes:
    cfg = ModelConfig(cell="lstm", vocab_size=5, hidden=3, layers=2, embed=2)
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in param_shapes(cfg).items()}
    size = sum(a.size for a in params.values())
    ckpt = Checkpoint(
        cfg,
        params,
        Vocab([10, 32, 97, 0x4E2D, 0x1F600]),
        {"name": "fuzz", "step": 3, "history": {"step": [1, 2], "val_loss": [2.0, None]}},
        {"m": np.zeros(size, np.float32), "step": np.array(3)},
        {n: np.zeros((2, 1, 3), np.float32) for n in state_names(cfg)},
    )
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.npz"
        save(path, ckpt)
        return path.read_bytes()


VALID = _valid_bytes()
with zipfile.ZipFile(io.BytesIO(VALID)) as _zf:
    MEMBERS = {i.filename: _zf.read(i) for i in _zf.infolist()}
NAMES = sorted(MEMBERS)


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "f.npz"


def _event(text: str) -> None:
    if currently_in_test_context():
        event(text)


def outcome(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    try:
        ckpt = load(path)
    except CheckpointError as e:
        msg = str(e)
        assert "\n" not in msg and str(path) in msg, msg
        _event("refused: " + msg[len(str(path)) + 1 :][:40])
        return "refused"
    # whatever load accepts is a checkpoint every other command can rely on
    cfg = ckpt.config
    assert {k: a.shape for k, a in ckpt.params.items()} == param_shapes(cfg)
    assert {a.dtype for a in ckpt.params.values()} <= {np.dtype("f4"), np.dtype("f8")}
    assert len(ckpt.vocab) == cfg.vocab_size
    assert 1 <= ckpt.meta["format_version"] <= FORMAT_VERSION
    for a in ckpt.state.values():
        assert a.shape[0] == cfg.layers and a.shape[2] == cfg.hidden
    _event("loaded")
    return "loaded"


def test_the_unmutated_file_loads(target):
    assert outcome(target, VALID) == "loaded"
    rebuilt = _zip(MEMBERS)
    assert outcome(target, rebuilt) == "loaded"  # the rebuilding helper itself is sound


# (op, where in [0, 1), byte value); op: flip | set | insert | delete | truncate
edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
        st.floats(0, 1, exclude_max=True),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=6,
)


def _apply(data: bytes, ops, head: int | None = None) -> bytes:
    """Apply byte edits; with `head`, positions fall in the first `head` bytes (the headers)."""
    b = bytearray(data)
    for op, where, val in ops:
        span = min(len(b), head) if head else len(b)
        pos = int(where * span) if span else 0
        if op == "truncate":
            del b[pos:]
        elif op == "insert":
            b.insert(pos, val)
        elif not b:
            continue
        elif op == "flip":
            b[min(pos, len(b) - 1)] ^= 1 << (val % 8)
        elif op == "set":
            b[min(pos, len(b) - 1)] = val
        elif op == "delete":
            del b[min(pos, len(b) - 1)]
    return bytes(b)


def _zip(members: dict[str, bytes]) -> bytes:
    """A well-formed zip (correct CRCs) around the given member bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@FUZZ
@given(data=st.binary(max_size=4000) | st.binary(max_size=4000).map(lambda b: b"PK\x03\x04" + b))
def test_random_bytes(target, data):
    assert outcome(target, data) == "refused"


@FUZZ
@given(ops=edits)
def test_mutated_file(target, ops):
    outcome(target, _apply(VALID, ops))


@FUZZ
@given(ops=edits, region=st.sampled_from([None, 256]), tail=st.booleans())
def test_mutated_zip_structure(target, ops, region, tail):
    """Edits aimed at the local headers (start) or the central directory (end) of the zip."""
    if tail:
        cut = len(VALID) - 1500
        outcome(target, VALID[:cut] + _apply(VALID[cut:], ops, region))
    else:
        outcome(target, _apply(VALID, ops, region))


@FUZZ
@given(name=st.sampled_from(NAMES), ops=edits, header_only=st.booleans())
def test_mutated_member_with_valid_crc(target, name, ops, header_only):
    """Damage inside one .npy member, rewrapped with correct CRCs so the npy parser sees it."""
    members = dict(MEMBERS)
    members[name] = _apply(members[name], ops, 128 if header_only else None)
    outcome(target, _zip(members))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=10,
)


def _meta_member(meta_text: str) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(meta_text))
    return buf.getvalue()


META = json.loads(str(np.load(io.BytesIO(MEMBERS["meta.npy"]))[()]))
META_KEYS = sorted(META) + [f"model_config.{k}" for k in sorted(META["model_config"])]


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(META_KEYS), json_values), max_size=3))
def test_mutated_meta_values(target, changes):
    meta = json.loads(json.dumps(META))
    for key, value in changes:
        if key.startswith("model_config.") and isinstance(meta.get("model_config"), dict):
            meta["model_config"][key.split(".", 1)[1]] = value
        else:
            meta[key] = value
    outcome(target, _zip({**MEMBERS, "meta.npy": _meta_member(json.dumps(meta))}))


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_arbitrary_meta_text(target, text):
    outcome(target, _zip({**MEMBERS, "meta.npy": _meta_member(text)}))
