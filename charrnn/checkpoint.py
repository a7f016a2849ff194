"""Checkpoints: one uncompressed .npz that holds everything sampling, evaluation and --resume need.

Layout (every member a plain .npy, never pickled):
  param/<name>   model parameters, PyTorch names and shapes (config.param_shapes), float32|float64
  optim/<name>   optimizer state (any numeric dtype and shape)
  state/<name>   recurrent state, names from config.state_names, each (L, B, H), float
  vocab          (V,) int32 sorted distinct Unicode code points
  meta           0-d unicode array holding one JSON object; `save` adds format_version (1, or
                 2 for a byte model, see FORMAT_VERSION),
                 charrnn_version and model_config (ModelConfig.to_dict()) to it, and
                 vocab_kind "bytes" for a byte model (absent: a character vocabulary)

`save` writes a temp file beside the target, fsyncs it and renames it over the target, so a
crash or a full disk never leaves a half-written checkpoint at `path`. `load` reads the zip
itself, member by member, with numpy's header parser: it never unpickles, never reads more than
the file holds, and turns every problem into one CheckpointError line.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import reprlib
import secrets
import stat
import struct
import tokenize
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charrnn import cells
from charrnn.config import ModelConfig, param_shapes
from charrnn.errors import CharrnnError, CheckpointError
from charrnn.vocab import Vocab

# 1: character vocabularies; 2: also byte vocabularies (meta vocab_kind). A checkpoint carries
# the lowest version that reads it right: a byte model says 2, so that a charrnn that predates
# bytes refuses it ("upgrade charrnn") instead of reading its 256 ids as code points 0-255.
# New model options need no new version: an older charrnn refuses their config keys by name.
FORMAT_VERSION = 2
MAX_MEMBERS = 10_000
PARAM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_SECTIONS = ("param", "optim", "state")


@dataclass
class Checkpoint:
    """A model with its vocabulary and everything needed to go on training it.

    meta is a JSON-able dict (train writes train_config, step, history, corpus, name, kind, ...);
    after `load` it also holds format_version, charrnn_version and model_config as stored.
    """

    config: ModelConfig
    params: dict[str, np.ndarray]  # PyTorch names -> arrays shaped as config.param_shapes
    vocab: Vocab
    meta: dict[str, Any] = field(default_factory=dict)
    optim: dict[str, np.ndarray] = field(default_factory=dict)
    state: dict[str, np.ndarray] = field(default_factory=dict)  # each (L, B, H)

    @property
    def name(self) -> str | None:
        """The run's name (meta["name"]), None when the checkpoint does not say."""
        name = self.meta.get("name")
        return name if isinstance(name, str) else None

    def has_nonfinite(self) -> list[str]:
        """Names of the parameters holding NaN or infinity (sampling refuses such a model)."""
        return [k for k, v in self.params.items() if not np.isfinite(v).all()]


def checkpoint_paths(out_dir: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """(latest, best) checkpoint paths of the run `name` in `out_dir`."""
    d = Path(out_dir)
    return d / f"{name}-latest.npz", d / f"{name}-best.npz"


# --- validation shared by save and load ---------------------------------------------------------


class _Mismatch(Exception):
    """A checkpoint's parts do not agree; the message is a phrase naming the problem."""


def _shape(s: tuple[int, ...]) -> str:
    return str(tuple(int(n) for n in s))


def _check_params(cfg: ModelConfig, params: dict[str, np.ndarray]) -> None:
    expected = param_shapes(cfg)
    missing = [k for k in expected if k not in params]
    extra = sorted(k for k in params if k not in expected)
    if missing:
        raise _Mismatch(f"tensor {missing[0]!r} is missing (the model config needs it)")
    if extra:
        raise _Mismatch(f"tensor {extra[0]!r} is not part of a model of this config")
    for k, shape in expected.items():
        a = params[k]
        if a.dtype not in PARAM_DTYPES:
            raise _Mismatch(f"tensor {k!r} has dtype {a.dtype}, expected float32 or float64")
        if a.shape != shape:
            raise _Mismatch(
                f"tensor {k!r} has shape {_shape(a.shape)}, the model config needs {_shape(shape)}"
            )
    dtypes = {a.dtype for a in params.values()}
    if len(dtypes) > 1:
        raise _Mismatch("parameters mix float32 and float64")


def _check_state(cfg: ModelConfig, state: dict[str, np.ndarray]) -> None:
    if not state:
        return
    widths = cells.get(cfg).state_widths()
    if set(state) != set(widths):
        raise _Mismatch(
            f"state holds {sorted(state)}, a {cfg.cell} needs {list(widths)} (or no state)"
        )
    batch = None
    for k, width in widths.items():
        a = state[k]
        if a.dtype not in PARAM_DTYPES:
            raise _Mismatch(f"state {k!r} has dtype {a.dtype}, expected float32 or float64")
        ok = a.ndim == 3 and a.shape[0] == cfg.layers and a.shape[2] == width
        if not ok or a.shape[1] < 1 or (batch is not None and a.shape[1] != batch):
            raise _Mismatch(
                f"state {k!r} has shape {_shape(a.shape)}, expected (layers={cfg.layers}, "
                f"batch, {width}) with one batch size for all state arrays"
            )
        batch = a.shape[1]


def _check_optim(optim: dict[str, np.ndarray]) -> None:
    for k, a in optim.items():
        if a.dtype.kind not in "biuf":
            raise _Mismatch(f"optimizer state {k!r} has dtype {a.dtype}, expected a number type")


def _check_vocab(cfg: ModelConfig, vocab: Vocab) -> None:
    if len(vocab) != cfg.vocab_size:
        raise _Mismatch(
            f"the vocabulary has {len(vocab)} symbols, the model config says {cfg.vocab_size}"
        )


def _check_json(obj: Any, where: str = "meta") -> None:
    """Raise TypeError naming the first value that would not survive a JSON round trip."""
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a key {k!r} that is not a string")
            _check_json(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_json(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} holds a {type(obj).__name__}, which JSON cannot store")


# --- save ---------------------------------------------------------------------------------------


def _plain_array(kind: str, name: object, a: object) -> np.ndarray:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{kind} names must be non-empty strings, got {name!r}")
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{kind} {name!r} must be a numpy array, got {type(a).__name__}")
    if a.dtype.hasobject or a.dtype.kind not in "biuf" or a.dtype.fields is not None:
        raise TypeError(f"{kind} {name!r} has dtype {a.dtype}: only numeric arrays can be saved")
    return a


def _arrays_to_write(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    """Validate `ckpt` (a bad one is a bug: TypeError/ValueError) and lay out the npz members."""
    cfg = ckpt.config
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(cfg).__name__}")
    if not isinstance(ckpt.vocab, Vocab):
        raise TypeError(f"vocab must be a Vocab, got {type(ckpt.vocab).__name__}")
    if not isinstance(ckpt.meta, dict):
        raise TypeError(f"meta must be a dict, got {type(ckpt.meta).__name__}")
    try:
        cfg.validate()
    except CharrnnError as e:
        raise ValueError(f"invalid model config: {e}") from None
    sections = {"param": ckpt.params, "optim": ckpt.optim, "state": ckpt.state}
    arrays: dict[str, np.ndarray] = {}
    for kind, d in sections.items():
        if not isinstance(d, dict):
            raise TypeError(f"{kind} must be a dict of arrays, got {type(d).__name__}")
        for name, a in d.items():
            arrays[f"{kind}/{name}"] = _plain_array(kind, name, a)
    try:
        _check_vocab(cfg, ckpt.vocab)
        _check_params(cfg, ckpt.params)
        _check_state(cfg, ckpt.state)
        _check_optim(ckpt.optim)
    except _Mismatch as e:
        raise ValueError(f"cannot save an inconsistent checkpoint: {e}") from None
    import charrnn

    meta = dict(ckpt.meta)
    meta.update(
        format_version=2 if ckpt.vocab.is_bytes else 1,
        charrnn_version=charrnn.__version__,
        model_config=cfg.to_dict(),
    )
    meta.pop("vocab_kind", None)
    if ckpt.vocab.is_bytes:
        meta["vocab_kind"] = "bytes"
    _check_json(meta)
    arrays["vocab"] = np.ascontiguousarray(ckpt.vocab.codepoints, dtype=np.int32)
    arrays["meta"] = np.array(json.dumps(meta))  # 0-d <U; ensure_ascii keeps it plain
    return arrays


def _open_new(path: Path):
    """Create a fresh hidden temp file beside `path`; returns (binary file, its path)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except FileExistsError:
            continue
        return os.fdopen(fd, "wb"), tmp
    raise FileExistsError(errno.EEXIST, "cannot create a temp file", str(path.parent))


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable. Best effort: some file systems refuse fsync on a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_WRITE_HINTS = {
    errno.ENOSPC: "free some disk space or write elsewhere with --out",
    errno.EDQUOT: "free some disk space or write elsewhere with --out",
    errno.EACCES: "check the directory's permissions or write elsewhere with --out",
    errno.EPERM: "check the directory's permissions or write elsewhere with --out",
    errno.EROFS: "the file system is read-only: write elsewhere with --out",
}


def save(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write `ckpt` to `path` atomically: the old file stays intact until the new one is whole.

    Does not modify `ckpt`. A bad checkpoint (object arrays, shapes that do not fit the config,
    meta JSON cannot hold) raises TypeError/ValueError; an OS failure raises CheckpointError.
    """
    path = Path(path)
    arrays = _arrays_to_write(ckpt)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f, tmp = _open_new(path)
        with f:
            np.savez(f, allow_pickle=False, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        hint = _WRITE_HINTS.get(e.errno)
        msg = f"cannot write checkpoint {path}: {reason}" + (f" ({hint})" if hint else "")
        raise CheckpointError(_one_line(msg)) from None
    finally:
        if tmp is not None:  # any failure, KeyboardInterrupt included: leave no debris
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(path.parent)


# --- load ---------------------------------------------------------------------------------------


def _one_line(s: str, limit: int | None = None) -> str:
    """`s` on one line; cut to `limit` characters (for text that comes from the file)."""
    s = " ".join(s.splitlines())
    return s if limit is None or len(s) <= limit else s[: limit - 3] + "..."


class _Damaged(Exception):
    """The archive cannot be read as a charrnn checkpoint; the message is the full tail."""


# What a damaged or crafted zip/npy can raise while we read it. Not a bare except: a bug of
# ours (TypeError, AttributeError, ...) still shows up as itself.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    ValueError,
    OSError,
    zlib.error,
    struct.error,
    NotImplementedError,
    OverflowError,
    UnicodeDecodeError,
    SyntaxError,  # numpy's fallback parser for Python 2 era .npy headers ...
    tokenize.TokenError,  # ... tokenizes the header and lets these through
)

_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One .npy member: header parsed by numpy (no pickle), data read exactly, CRC checked."""
    key = info.filename[: -len(".npy")][:80]  # for messages
    with zf.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        reader = _HEADER_READERS.get(version)
        if reader is None:
            raise _Damaged(f"has an entry {key!r} in an unsupported .npy version {version}")
        with warnings.catch_warnings():  # a malformed header makes numpy warn before failing
            warnings.simplefilter("ignore")
            shape, fortran, dtype = reader(fp)
        if dtype.hasobject:
            raise _Damaged(
                f"holds Python objects in {key!r} (pickled data), which charrnn refuses to "
                "load because unpickling can run arbitrary code"
            )
        if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biufU":
            raise _Damaged(f"has an entry {key!r} of unsupported dtype {reprlib.repr(str(dtype))}")
        if any(n < 0 for n in shape):
            raise _Damaged(f"has an entry {key!r} with a negative dimension {reprlib.repr(shape)}")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if info.file_size - fp.tell() != nbytes:
            raise _Damaged(
                f"is damaged: entry {key!r} should hold {nbytes} bytes of data but holds "
                f"{info.file_size - fp.tell()}"
            )
        data = fp.read(nbytes)
        if len(data) != nbytes or fp.read(1):  # reading to the end checks the CRC
            raise _Damaged(f"is damaged: entry {key!r} is cut short")
    if nbytes == 0:
        a = np.zeros(shape, dtype=dtype)
    else:
        a = np.frombuffer(data, dtype=dtype, count=count).reshape(
            shape, order="F" if fortran else "C"
        )
    if not a.dtype.isnative:
        a = a.byteswap().view(a.dtype.newbyteorder("="))  # exact, NaN payloads included
    return np.array(a, order="C")  # own, writable, C-contiguous copy


def _open_regular(path: Path):
    """`path` opened for reading; a named pipe or device is refused without waiting on it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise CheckpointError(
            f"{path} is not a checkpoint file (it is a named pipe, socket or device): "
            "pass a .npz file"
        )
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every member of the archive at `path` as an array, keyed without the .npy suffix."""
    try:
        f = _open_regular(path)
    except FileNotFoundError:
        raise CheckpointError(
            f"no checkpoint at {path}: the file does not exist (train one with `charrnn train`, "
            "or check the path)"
        ) from None
    except IsADirectoryError:
        raise CheckpointError(
            f"{path} is a directory, not a checkpoint: pass a file such as {path / 'NAME-best.npz'}"
        ) from None
    except (OSError, ValueError) as e:  # permissions, a bad name, a NUL in the path, ...
        reason = getattr(e, "strerror", None) or str(e)
        raise CheckpointError(_one_line(f"cannot read checkpoint {path}: {reason}")) from None
    arrays: dict[str, np.ndarray] = {}
    try:
        with f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise _Damaged("is empty (an interrupted copy?): use another checkpoint")
            head = f.read(4)
            if head != b"PK\x03\x04":
                if b"PK\x03\x04".startswith(head):
                    raise _Damaged("is truncated (an interrupted copy?): use another checkpoint")
                raise _Damaged("is not a charrnn checkpoint (not an .npz archive)")
            f.seek(0)
            with zipfile.ZipFile(f) as zf:
                infos = zf.infolist()
                _check_members(infos, size)
                for info in infos:
                    arrays[info.filename[: -len(".npy")]] = _read_member(zf, info)
    except _Damaged as e:
        raise CheckpointError(f"{path} {_one_line(str(e), 600)}") from None
    except RecursionError:
        raise CheckpointError(f"{path} is damaged: its .npy headers are malformed") from None
    except _READ_ERRORS as e:
        reason = _one_line(str(e) or type(e).__name__, 200)
        raise CheckpointError(
            _one_line(
                f"{path} is damaged or truncated ({reason}): copy it again or use another "
                "checkpoint of the run"
            )
        ) from None
    return arrays


def _check_members(infos: list[zipfile.ZipInfo], size: int) -> None:
    """Refuse archives whose table of contents could make reading slow, big or ambiguous."""
    if len(infos) > MAX_MEMBERS:
        raise _Damaged(f"is not a charrnn checkpoint (it has {len(infos)} entries)")
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if not name.endswith(".npy"):
            raise _Damaged(f"is not a charrnn checkpoint (it holds {name[:80]!r}, not an array)")
        if name in seen:
            raise _Damaged(f"is damaged: the entry {name[:80]!r} appears twice")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise _Damaged(f"is not a charrnn checkpoint (the entry {name[:80]!r} is encrypted)")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _Damaged(
                f"has a compressed entry {name[:80]!r}: charrnn reads uncompressed .npz files "
                "(re-save it with numpy.savez, not savez_compressed)"
            )
        if info.compress_size != info.file_size:
            raise _Damaged(f"is damaged: the sizes of entry {name[:80]!r} disagree")
        total += info.file_size
    if total > size:
        raise _Damaged(f"is damaged or truncated: its entries claim {total} bytes, it has {size}")


def _field_types(annotation: str) -> tuple[type, ...] | None:
    """Python types a JSON value may take for a dataclass field annotated `annotation`."""
    kinds = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
    out: list[type] = []
    for part in annotation.replace(" ", "").split("|"):
        if part == "None":
            out.append(type(None))
        elif part in kinds:
            out.extend(kinds[part])
        else:
            return None  # an annotation we do not know: leave it to validate()
    return tuple(out)


def _model_config(d: object) -> ModelConfig:
    if not isinstance(d, dict):
        raise _Mismatch("its model_config is not a JSON object")
    for f in dataclasses.fields(ModelConfig):
        if f.name not in d:
            continue
        types = _field_types(str(f.type))
        v = d[f.name]
        bad_bool = isinstance(v, bool) and bool not in (types or ())
        if types is not None and (bad_bool or not isinstance(v, types)):
            raise _Mismatch(f"its model_config field {f.name!r} has a bad value {reprlib.repr(v)}")
    try:
        return ModelConfig.from_dict(d).validate()
    except (ValueError, CharrnnError) as e:
        raise _Mismatch(f"its model_config is invalid: {e}") from None


def _parse_meta(a: np.ndarray | None) -> dict[str, Any]:
    if a is None:
        raise _Damaged("is not a charrnn checkpoint (it has no 'meta' entry)")
    if a.dtype.kind != "U" or a.ndim != 0:
        raise _Damaged(f"is damaged: 'meta' is a {a.dtype} array of shape {a.shape}, not text")
    try:
        meta = json.loads(str(a[()]))
    except (ValueError, RecursionError) as e:
        raise _Damaged(f"is damaged: 'meta' is not valid JSON ({_one_line(str(e), 120)})") from None
    if not isinstance(meta, dict):
        raise _Damaged("is damaged: 'meta' is not a JSON object")
    version = meta.get("format_version")
    if version is None:
        raise _Damaged("is not a charrnn checkpoint (its meta has no format_version)")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Damaged(f"is damaged: bad format_version {reprlib.repr(version)}")
    if version > FORMAT_VERSION:
        raise _Damaged(
            f"was written by a newer charrnn (format {version}; this charrnn reads format "
            f"{FORMAT_VERSION}): upgrade charrnn"
        )
    return meta


def _from_arrays(arrays: dict[str, np.ndarray]) -> Checkpoint:
    meta = _parse_meta(arrays.pop("meta", None))
    sections: dict[str, dict[str, np.ndarray]] = {s: {} for s in _SECTIONS}
    vocab_arr = arrays.pop("vocab", None)
    for key, a in arrays.items():
        kind, _, name = key.partition("/")
        if kind not in sections or not name:
            raise _Damaged(f"is not a charrnn checkpoint (unexpected entry {key[:80]!r})")
        sections[kind][name] = a
    try:
        cfg = _model_config(meta.get("model_config"))
        # param_shapes loops over layers: refuse an absurd count before asking for it
        if cfg.layers > len(sections["param"]):
            raise _Mismatch(
                f"the model config has {cfg.layers} layers but the file holds only "
                f"{len(sections['param'])} parameter tensors"
            )
        if vocab_arr is None:
            raise _Mismatch("it has no 'vocab' entry")
        if vocab_arr.dtype != np.int32 or vocab_arr.ndim != 1:
            raise _Mismatch(
                f"its vocab is a {vocab_arr.dtype} array of shape {_shape(vocab_arr.shape)}, "
                "expected int32 code points (V,)"
            )
        kind = meta.get("vocab_kind", "chars")
        if kind not in ("chars", "bytes"):
            raise _Mismatch(f"its vocab_kind {reprlib.repr(kind)} is neither chars nor bytes")
        try:
            vocab = Vocab(vocab_arr, kind=kind)
        except CharrnnError as e:
            raise _Mismatch(f"its vocab is invalid: {e}") from None
        _check_vocab(cfg, vocab)
        _check_params(cfg, sections["param"])
        _check_state(cfg, sections["state"])
        _check_optim(sections["optim"])
    except _Mismatch as e:
        raise _Damaged(f"does not hold a usable model: {e}") from None
    return Checkpoint(
        config=cfg,
        params=sections["param"],
        vocab=vocab,
        meta=meta,
        optim=sections["optim"],
        state=sections["state"],
    )


def load(path: str | os.PathLike) -> Checkpoint:
    """Read and fully validate the checkpoint at `path` (no pickle; file closed on return).

    Parameters come back with the dtype they were stored in (float32 or float64); NaN and
    infinity are allowed here, see Checkpoint.has_nonfinite. Any problem: CheckpointError.
    """
    path = Path(path)
    arrays = _read_npz(path)
    try:
        return _from_arrays(arrays)
    except _Damaged as e:
        raise CheckpointError(f"{path} {_one_line(str(e), 600)}") from None


def load_finite(path: str | os.PathLike) -> Checkpoint:
    """`load`, refusing a checkpoint whose weights hold NaN or infinity (a diverged run): what
    the commands that run a model (eval, sample, inspect --neuron) read."""
    ckpt = load(path)
    bad = ckpt.has_nonfinite()
    if bad:
        raise CheckpointError(
            f"{path} holds NaN or infinite weights (in {', '.join(bad[:3])}): the run diverged; "
            "use an earlier checkpoint"
        )
    return ckpt


# --- finding the checkpoint to use ----------------------------------------------------------------


def resolve_checkpoint(path: str | os.PathLike | None) -> Path:
    """The file a command's --checkpoint means: the path itself, or for a directory (and for
    None, checkpoints/) the checkpoint `find_checkpoint` picks in it."""
    if path is None:
        return find_checkpoint("checkpoints")
    path = Path(path)
    return find_checkpoint(path) if path.is_dir() else path


def find_checkpoint(directory: str | os.PathLike) -> Path:
    """The checkpoint to use when none is given: the most recently written run in `directory`
    (by the newest mtime of its -latest/-best files), its -best.npz if present, else -latest."""
    d = Path(directory)
    runs: dict[str, dict[str, Path]] = {}
    newest: dict[str, int] = {}
    try:
        entries = list(d.iterdir())
    except OSError:
        entries = []
    for p in entries:
        for kind in ("latest", "best"):
            suffix = f"-{kind}.npz"
            if not p.name.endswith(suffix) or p.name.startswith("."):
                continue
            try:
                st = p.stat()
            except OSError:
                continue
            if not p.is_file():
                continue
            run = p.name[: -len(suffix)]
            runs.setdefault(run, {})[kind] = p
            newest[run] = max(newest.get(run, st.st_mtime_ns), st.st_mtime_ns)
    if not runs:
        raise CheckpointError(
            f"no checkpoint in {d}: train one with `charrnn train`, or pass --checkpoint PATH"
        )
    run = max(runs, key=lambda r: (newest[r], r))
    return runs[run].get("best") or runs[run]["latest"]
