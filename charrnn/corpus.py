"""Read a corpus: stream-decode text files (or stdin), fingerprint them, and encode them once into
a cached, memory-mapped array of ids.

Memory stays bounded whatever the corpus size: the text is never held as one Python str.

* pass 1 decodes the raw bytes chunk by chunk (an incremental decoder carries multi-byte sequences
  across chunk boundaries) and gathers the set of code points, the character count and the
  sha256 of the raw bytes;
* pass 2 decodes again and writes the ids chunk by chunk behind a .npy header (plain writes, so
  the written pages never count in this process's memory), then maps the file read-only.

The encoded corpus is cached under a key made of the content's sha256 and the decoding settings,
with its vocabulary beside it. A small index maps (path, size, mtime_ns, inode) to that key so a
warm load does not even reread the file; a changed file misses the index, is rehashed, and gets a
new key. Every cache file is written to a temporary name and renamed, so an interrupted build never
leaves a bad entry; the JSON metadata is written last and marks an entry complete. Opening an
entry touches its metadata; after a build, the entries used longest ago are deleted while the
cache holds more than CACHE_BYTES (never the one just built). An entry deleted while another
process has it mapped stays readable there (POSIX keeps an unlinked file alive until unmapped).
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import importlib.resources
import json
import os
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from charrnn import integrity
from charrnn.errors import CharrnnWarning, CorpusError, ResourceError, UsageError
from charrnn.lock import hold, sweep
from charrnn.resources import check_disk, fmt_bytes, free_disk
from charrnn.vocab import Vocab

CHUNK_BYTES = 1 << 22  # raw bytes read and decoded at a time (4 MiB)
CACHE_VERSION = 2  # bump when the layout of a cache entry changes (2: sealed, integrity.py)
ERRORS = ("strict", "replace", "ignore")
INDEX_ENTRIES = 256  # (path, size, mtime) records kept in the index
CACHE_BYTES = 4 << 30  # entries used longest ago are deleted past this total
RACY_NS = 2_000_000_000  # files modified this recently are rehashed, not trusted by mtime
STDIN = "-"
SPOOL_CHECK = 64 << 20  # bytes spooled between two looks at the free space
SPOOL_RESERVE = 64 << 20  # a spool never leaves less free space than this (or than its size)
DEBRIS = (".spool-*", ".*.tmp", ".probe-*")  # our temporary files in the cache directory
CACHE_HINT = "free some space, or set CHARRNN_CACHE_DIR to a folder on a disk with more"
_BOM = "\ufeff"
_MAX_CODEPOINT = 0x10FFFF


@dataclass
class Corpus:
    """A corpus encoded as ids, ready to split and batch.

    `ids` (N,) is a read-only memory map of dtype `vocab.dtype` (uint8/16/32), N characters.
    `fingerprint` is {name, sha256, chars, bytes}: sha256 of the raw bytes of all sources, in
    order (for a single file, what `sha256sum` prints), the character count N after removing byte
    order marks, and the raw byte count.
    """

    name: str  # file name(s), or "<stdin>"
    sources: list[str]  # as given: paths, "-" for stdin
    vocab: Vocab
    ids: np.ndarray  # (N,) vocab.dtype memmap
    fingerprint: dict[str, Any] = field(default_factory=dict)
    cache_path: Path | None = None  # the .npy file behind `ids`

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def text(self, start: int = 0, stop: int | None = None) -> str:
        """Decode a slice of the corpus back to text (meant for small slices)."""
        return self.vocab.decode(self.ids[start:stop])


@dataclass(frozen=True)
class _Source:
    label: str  # how messages name it: the path as given, or "<stdin>"
    name: str  # its file name, or "<stdin>"
    path: Path  # a readable regular file (stdin and pipes are spooled to one first)
    size: int
    stat_key: tuple | None  # (path, size, mtime_ns, inode) when it can be trusted for the index


@dataclass(frozen=True)
class _Scan:
    sha256: str
    nbytes: int
    chars: int
    codepoints: np.ndarray  # (V,) sorted distinct code points


def default_corpus_path() -> Path:
    """The bundled corpus: inside the installed package, else beside the source tree."""
    try:
        res = importlib.resources.files("charrnn.corpora") / "shakespeare.txt"
        path = Path(str(res))
        if path.is_file():
            return path
    except (ModuleNotFoundError, TypeError, ValueError):
        pass
    import charrnn

    return Path(charrnn.__file__).resolve().parent.parent / "corpora" / "shakespeare.txt"


def default_cache_dir() -> Path:
    """$CHARRNN_CACHE_DIR, else $XDG_CACHE_HOME/charrnn, else ~/.cache/charrnn; plus /corpus."""
    root = os.environ.get("CHARRNN_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = os.path.join(xdg, "charrnn") if xdg else os.path.join("~", ".cache", "charrnn")
    return Path(root).expanduser() / "corpus"


def load_corpus(
    sources: Sequence[str | os.PathLike] | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
    cache_dir: Path | None = None,
    *,
    chunk_bytes: int = CHUNK_BYTES,
) -> Corpus:
    """Read, decode and encode one or more text files ("-" for stdin), concatenated in order.

    With no sources, the bundled corpus. `errors` is "strict" (invalid bytes raise CorpusError
    naming the file and byte offset), "replace" (U+FFFD) or "ignore". A byte order mark at the
    start of each file is dropped; everything else (CRLF, NUL, ...) is kept as a symbol.
    `cache_dir` holds the encoded entries (default: `default_cache_dir()`; a directory that cannot
    be written falls back to one under the system's temporary directory).
    """
    enc = _check_settings(encoding, errors)
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    given = [str(s) for s in (sources if sources else [default_corpus_path()])]
    if given.count(STDIN) > 1:
        raise UsageError("stdin (-) can be given only once")
    checked = {i: _check_file(s) for i, s in enumerate(given) if s != STDIN}
    cache = usable_cache_dir(cache_dir)
    sweep(cache, DEBRIS)  # what runs killed while writing here left behind
    spools: list[Path] = []
    try:
        srcs = [
            checked[i] if s != STDIN else _spool_stdin(cache, chunk_bytes, spools)
            for i, s in enumerate(given)
        ]
        srcs = [_spool_pipe(src, cache, chunk_bytes, spools) for src in srcs]
        name = _corpus_name(srcs)
        return _load(given, srcs, name, enc, errors, cache, chunk_bytes)
    finally:
        for p in spools:
            with suppress(OSError):
                p.unlink()


def _load(given, srcs, name, enc, errors, cache, chunk_bytes) -> Corpus:
    index_key = _index_key(srcs, enc, errors)
    key, sha = _index_lookup(cache, index_key) if index_key else (None, None)
    if key is not None:
        corpus = _open_entry(cache, key, given, name)
        if corpus is not None and corpus.fingerprint["sha256"] == sha:
            return corpus
    sha256, sizes = _hash_sources(srcs, chunk_bytes)  # cheap: finds an entry for touched files
    key = _entry_key(sha256, sizes, enc, errors)
    corpus = _open_entry(cache, key, given, name)
    if corpus is None:
        scan = _scan(srcs, enc, errors, chunk_bytes)
        if scan.sha256 != sha256:
            raise CorpusError(f"{name}: a file changed while it was read (run again)")
        if scan.chars == 0:
            raise CorpusError(f"{name}: the corpus is empty (it holds no characters)")
        _build_entry(cache, key, srcs, scan, enc, errors, chunk_bytes)
        corpus = _open_entry(cache, key, given, name, verify=False)  # sound: we just wrote it
        if corpus is None:  # pragma: no cover - the entry we just wrote is unreadable
            raise CorpusError(f"{name}: could not read back the encoded corpus in {cache}")
        _evict(cache, key, CACHE_BYTES)
    if index_key:
        _index_store(cache, index_key, key, corpus.fingerprint["sha256"])
    return corpus


# ---------------------------------------------------------------- sources


def _check_settings(encoding: str, errors: str) -> str:
    """Validate the decoding settings; return the codec's canonical name."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r} (try utf-8 or latin-1)") from None
    if not getattr(info, "_is_text_encoding", True):
        raise UsageError(f"{encoding!r} is not a text encoding (try utf-8 or latin-1)")
    if errors not in ERRORS:
        raise UsageError(f"unknown errors mode {errors!r}: choose one of {', '.join(ERRORS)}")
    return info.name


def _check_file(arg: str) -> _Source:
    """A source path that exists, is not a directory and can be opened, or a CorpusError."""
    path = Path(arg).expanduser()
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise CorpusError(f"{arg}: is a directory (give the text files inside it)")
        if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and not _is_tty(path):
            raise CorpusError(f"{arg}: is a device, not a text file (give a file, or - for stdin)")
        if stat.S_ISREG(st.st_mode):  # opening a pipe here would consume its writer
            with open(path, "rb"):
                pass
    except FileNotFoundError:
        raise CorpusError(f"{arg}: no such file (give a text file, or - for stdin)") from None
    except PermissionError:
        raise CorpusError(f"{arg}: permission denied (check the file's permissions)") from None
    except OSError as e:
        raise CorpusError(f"{arg}: cannot read it ({_why(e)})") from None
    regular = stat.S_ISREG(st.st_mode)
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino) if regular else None
    if key and time.time_ns() - st.st_mtime_ns < RACY_NS:
        key = None  # modified just now: a same-size rewrite could keep this mtime, so rehash
    return _Source(arg, path.name or arg, path, st.st_size if regular else -1, key)


def _is_tty(path: Path) -> bool:
    """A terminal (`/dev/stdin` typed into), unlike /dev/zero or a disk, ends when asked to."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return False
    try:
        return os.isatty(fd)
    finally:
        os.close(fd)


def _spool(stream: IO[bytes], label: str, cache: Path, chunk_bytes: int, spools: list) -> _Source:
    """Copy a one-pass stream to a temporary file in the cache directory (two passes need it).
    It stops with an error before the copy would leave less free space than it has taken (the
    encoded corpus needs about as much again), so an endless stream cannot fill the disk."""
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".spool-", suffix=".txt")
    spools.append(Path(tmp))
    hold(fd)  # while we write it: not an orphan for lock.sweep
    size = 0
    with os.fdopen(fd, "wb") as out:
        while True:
            try:
                data = stream.read(chunk_bytes)
            except OSError as e:
                raise CorpusError(f"{label}: cannot read it ({_why(e)})") from None
            if not data:
                break
            if size // SPOOL_CHECK != (size + len(data)) // SPOOL_CHECK or not size:
                free = free_disk(cache)
                if free is not None and free - len(data) < max(SPOOL_RESERVE, size):
                    raise ResourceError(
                        f"{label}: keeping a copy of it would fill the disk ({fmt_bytes(size)} "
                        f"read so far, {fmt_bytes(free)} free in {cache}): {CACHE_HINT}"
                    )
            try:
                out.write(data)
            except OSError as e:
                raise CorpusError(
                    f"{label}: cannot keep a copy of it in {cache} ({_why(e)}): {CACHE_HINT}"
                ) from None
            size += len(data)
    return _Source(label, label, Path(tmp), size, None)


def _spool_stdin(cache: Path, chunk_bytes: int, spools: list) -> _Source:
    stdin = getattr(sys.stdin, "buffer", None)
    if stdin is None:
        raise CorpusError("<stdin>: standard input is closed (pipe text in, or give a file)")
    return _spool(stdin, "<stdin>", cache, chunk_bytes, spools)


def _spool_pipe(src: _Source, cache: Path, chunk_bytes: int, spools: list) -> _Source:
    """A named pipe or device (e.g. `<(zcat corpus.gz)`) can be read once: spool it."""
    if src.size >= 0:
        return src
    try:
        with open(src.path, "rb") as f:
            spooled = _spool(f, src.label, cache, chunk_bytes, spools)
    except OSError as e:
        raise CorpusError(f"{src.label}: cannot read it ({_why(e)})") from None
    return _Source(src.label, src.name, spooled.path, spooled.size, None)


def _corpus_name(srcs: list[_Source]) -> str:
    names = [s.name for s in srcs]
    if len(names) > 3:
        return "+".join(names[:3]) + f"+{len(names) - 3} more"
    return "+".join(names)


# ---------------------------------------------------------------- decoding


def _decode(src: _Source, encoding: str, errors: str, chunk_bytes: int, hasher) -> Iterator[str]:
    """Decoded text of one source, chunk by chunk, without its leading byte order mark.

    Raw bytes go through `hasher`. A decoding error names the file and the absolute byte offset
    of the first bad byte: the decoder's buffered bytes (an incomplete sequence carried over from
    the previous chunk) are counted back from the position of the current chunk.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    pos = 0  # bytes read before the current chunk
    at_start = True
    try:
        f = open(src.path, "rb")
    except OSError as e:
        raise CorpusError(f"{src.label}: cannot read it ({_why(e)})") from None
    with f:
        while True:
            try:
                data = f.read(chunk_bytes)
            except OSError as e:
                raise CorpusError(f"{src.label}: cannot read it ({_why(e)})") from None
            final = not data
            pending = _pending_bytes(decoder)
            try:
                text = decoder.decode(data, final)
            except UnicodeDecodeError as e:
                raise CorpusError(
                    _bad_bytes(src.label, encoding, pos - pending + e.start)
                ) from None
            hasher.update(data)
            pos += len(data)
            if at_start and text:
                at_start = False
                if text[0] == _BOM:
                    text = text[1:]
            if text:
                yield text
            if final:
                return


def _hash_sources(srcs: list[_Source], chunk_bytes: int) -> tuple[str, list[int]]:
    """The sha256 of the raw bytes of all sources in order, and each source's byte count."""
    hasher = _Hasher()
    sizes = []
    for src in srcs:
        before = hasher.nbytes
        try:
            with open(src.path, "rb") as f:
                while data := f.read(max(chunk_bytes, 1 << 20)):
                    hasher.update(data)
        except OSError as e:
            raise CorpusError(f"{src.label}: cannot read it ({_why(e)})") from None
        sizes.append(hasher.nbytes - before)
    return hasher.hexdigest(), sizes


def _pending_bytes(decoder) -> int:
    try:
        buffered = decoder.getstate()[0]
        return len(buffered) if isinstance(buffered, (bytes, bytearray)) else 0
    except (AttributeError, TypeError, IndexError):  # pragma: no cover - exotic codecs
        return 0


def _bad_bytes(label: str, encoding: str, offset: int) -> str:
    shown = "UTF-8" if encoding == "utf-8" else encoding
    return (
        f"{label}: invalid {shown} at byte {offset} "
        "(use --errors replace to replace bad bytes, or --encoding to read another encoding)"
    )


def _codepoints(text: str) -> np.ndarray:
    """(n,) code points of a chunk: uint8 for ASCII (a cheap copy), else uint32."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _scan(srcs: list[_Source], encoding: str, errors: str, chunk_bytes: int) -> _Scan:
    """Pass 1: the distinct code points, the character count and the sha256 of the raw bytes."""
    seen = np.zeros(_MAX_CODEPOINT + 1, dtype=bool)  # (0x110000,) one flag per code point
    hasher = _Hasher()
    chars = 0
    for src in srcs:
        for text in _decode(src, encoding, errors, chunk_bytes, hasher):
            seen[_codepoints(text)] = True
            chars += len(text)
    return _Scan(hasher.hexdigest(), hasher.nbytes, chars, np.flatnonzero(seen))


class _Hasher:
    """The sha256 of all bytes fed to it, and their count."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.nbytes = 0

    def update(self, data: bytes) -> None:
        self._h.update(data)
        self.nbytes += len(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


# ---------------------------------------------------------------- cache entries


def _entry_key(sha256: str, sizes: list[int], encoding: str, errors: str) -> str:
    """The cache key: content hash, per-source sizes (where BOMs may sit) and decoding settings."""
    spec = json.dumps([CACHE_VERSION, sha256, sizes, encoding, errors])
    return hashlib.sha256(spec.encode()).hexdigest()[:32]


def _paths(cache: Path, key: str) -> tuple[Path, Path, Path]:
    return cache / f"{key}.ids.npy", cache / f"{key}.vocab.npy", cache / f"{key}.json"


def _open_entry(
    cache: Path, key: str, given: list[str], name: str, verify: bool = True
) -> Corpus | None:
    """The cached corpus for `key`, or None when there is none (then it is built). An entry
    that fails its checks (charrnn/integrity.py) gets one warning, is deleted, and is None."""
    ids_path, vocab_path, meta_path = _paths(cache, key)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None  # never built (the metadata is written last)
    except (OSError, ValueError) as e:
        _refuse_transient(e, cache, name)
        return _damaged(cache, key, name, f"its metadata is unreadable ({_reason(e)})")
    if not isinstance(meta, dict):
        return _damaged(cache, key, name, "its metadata is not a JSON object")
    if meta.get("version") != CACHE_VERSION:
        if "check" in meta and not integrity.sealed(meta):  # our seal, broken: not a version
            return _damaged(cache, key, name, "its metadata does not match its checksum")
        return None  # another layout (an older charrnn's): built again beside it
    try:
        why = integrity.problem(meta, ids_path, vocab_path) if verify else None
    except OSError as e:
        _refuse_transient(e, cache, name)
        why = f"a file of it cannot be read ({_reason(e)})"
    if why is not None:
        return _damaged(cache, key, name, why)
    try:
        vocab = Vocab(np.load(vocab_path, allow_pickle=False))
        ids = np.load(ids_path, mmap_mode="r", allow_pickle=False)
        if ids.dtype != vocab.dtype or ids.shape != (int(meta["chars"]),):
            return _damaged(cache, key, name, "its ids do not fit its metadata")
        fingerprint = {
            "name": name,
            "sha256": str(meta["sha256"]),
            "chars": int(meta["chars"]),
            "bytes": int(meta["bytes"]),
        }
    except Exception as e:  # a crafted file can make numpy or Vocab raise anything
        _refuse_transient(e, cache, name)
        return _damaged(cache, key, name, f"it cannot be read ({_reason(e)})")
    fresh = integrity.restamp(meta, ids_path)  # found sound: no full read next time
    if fresh is not None:
        with suppress(OSError), _atomic(meta_path) as out:
            out.write(json.dumps(fresh, indent=1).encode())
    with suppress(OSError):
        os.utime(meta_path)  # last used: eviction keeps recently used entries
    return Corpus(name, list(given), vocab, ids, fingerprint, ids_path)


# errors of the moment, not of the file: never a reason to call a cache entry damaged
_TRANSIENT = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EINTR, errno.EACCES,
              errno.EPERM}  # fmt: skip


def _why(e: OSError) -> str:
    """An OSError's reason, with what to do when the process ran out of file descriptors."""
    reason = e.strerror or str(e)
    if e.errno in (errno.EMFILE, errno.ENFILE):
        reason += ": raise the limit (ulimit -n) and run again"
    return reason


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(text.split())[:120]


def _refuse_transient(e: BaseException, cache: Path, name: str) -> None:
    """A CorpusError for an error of the moment (too many open files, no permission, ...):
    the entry may well be sound, so it is neither warned about nor deleted."""
    if isinstance(e, OSError) and e.errno in _TRANSIENT:
        raise CorpusError(f"{name}: cannot open its cached encoding in {cache} ({_why(e)})")


def _damaged(cache: Path, key: str, name: str, why: str) -> None:
    """Warn that an entry is damaged and delete it, so that it is built again."""
    warnings.warn(
        f"the cached encoding of {name} in {cache} is damaged ({why}): rebuilding it from the "
        "source",
        CharrnnWarning,
        stacklevel=3,
    )
    for f in reversed(_paths(cache, key)):  # the metadata first: the entry is incomplete
        with suppress(OSError):
            f.unlink()
    return None


def _evict(cache: Path, keep: str, limit: int) -> None:
    """Delete the entries used longest ago (by their metadata's mtime) while the entries total
    more than `limit` bytes; never `keep`. Best effort: what cannot be read or deleted stays."""
    entries = []
    for meta in cache.glob("*.json"):
        key = meta.name[: -len(".json")]
        if meta.name == "index.json" or not key.isalnum():
            continue
        files = _paths(cache, key)
        with suppress(OSError):
            size = sum(f.stat().st_size for f in files if f.exists())
            entries.append((meta.stat().st_mtime, key, size, files))
    total = sum(e[2] for e in entries)
    for _, key, size, files in sorted(entries):
        if total <= limit:
            break
        if key == keep:
            continue
        for f in (files[2], files[0], files[1]):  # the metadata first: the entry is incomplete
            with suppress(OSError):
                f.unlink()
        total -= size


def _build_entry(
    cache: Path,
    key: str,
    srcs: list[_Source],
    scan: _Scan,
    encoding: str,
    errors: str,
    chunk_bytes: int,
) -> None:
    """Pass 2: encode every chunk through a lookup table and write the entry's three files."""
    vocab = Vocab(scan.codepoints)
    ids_path, vocab_path, meta_path = _paths(cache, key)
    lut = np.zeros(_MAX_CODEPOINT + 1, dtype=vocab.dtype)  # (0x110000,) code point -> id
    lut[vocab.codepoints] = np.arange(len(vocab), dtype=vocab.dtype)
    hasher = _Hasher()
    written = 0
    label = "+".join(s.label for s in srcs)
    need = 128 + scan.chars * vocab.dtype.itemsize + 4 * len(vocab) + 4096  # ids, vocab, meta
    check_disk(cache, need, f"{label}: its encoding", "set CHARRNN_CACHE_DIR to another folder")
    try:
        with _atomic(ids_path) as f:
            out = _Hashing(f)  # the digest of what is written, without reading it back
            header = {
                "descr": np.lib.format.dtype_to_descr(vocab.dtype),
                "fortran_order": False,
                "shape": (scan.chars,),
            }
            np.lib.format.write_array_header_1_0(out, header)
            for src in srcs:
                for text in _decode(src, encoding, errors, chunk_bytes, hasher):
                    ids = np.take(lut, _codepoints(text))  # (n,) vocab.dtype
                    written += ids.size
                    if written > scan.chars:
                        break
                    out.write(memoryview(ids))
            if written != scan.chars or hasher.hexdigest() != scan.sha256:
                raise CorpusError(f"{label}: a file changed while it was read (run again)")
        with _atomic(vocab_path) as f:
            vocab_out = _Hashing(f)
            np.save(vocab_out, vocab.codepoints, allow_pickle=False)
        meta = {
            "version": CACHE_VERSION,
            "sha256": scan.sha256,
            "chars": scan.chars,
            "bytes": scan.nbytes,
            "vocab_size": len(vocab),
            "dtype": vocab.dtype.name,
            "encoding": encoding,
            "errors": errors,
            "sources": [s.label for s in srcs],
        }
        meta = integrity.seal(meta, out.hexdigest(), vocab_out.hexdigest(), ids_path)
        with _atomic(meta_path) as out:
            out.write(json.dumps(meta, indent=1).encode())
    except OSError as e:
        raise CorpusError(
            f"cannot write the corpus cache in {cache}: {_why(e)} "
            "(free some space, or set CHARRNN_CACHE_DIR to another directory)"
        ) from None


class _Hashing:
    """A binary file that also feeds what is written to a sha256."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self._h = f, hashlib.sha256()

    def write(self, data) -> int:
        self._h.update(data)
        return self.f.write(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class _atomic:
    """Write a file under a temporary name in the same directory; fsync and rename on success,
    delete on any failure (including KeyboardInterrupt)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> IO[bytes]:
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        self.tmp = Path(tmp)
        hold(fd)  # while we write it: not an orphan for lock.sweep
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
        finally:
            if self.tmp.exists():
                with suppress(OSError):
                    self.tmp.unlink()


# ---------------------------------------------------------------- the (path, size, mtime) index


def _index_key(srcs: list[_Source], encoding: str, errors: str) -> str | None:
    if any(s.stat_key is None for s in srcs):
        return None
    return json.dumps([CACHE_VERSION, encoding, errors, [list(s.stat_key) for s in srcs]])


def _read_index(cache: Path) -> dict[str, dict]:
    try:
        data = json.loads((cache / "index.json").read_text(encoding="utf-8"))
        entries = data.get("entries", {}) if data.get("version") == CACHE_VERSION else {}
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _index_lookup(cache: Path, index_key: str) -> tuple[str | None, str | None]:
    """The entry key and content sha256 recorded for these files (the entry opened must have
    that sha256: a damaged index cannot hand over another corpus), or (None, None)."""
    entry = _read_index(cache).get(index_key)
    key = entry.get("key") if isinstance(entry, dict) else None
    sha = entry.get("sha256") if isinstance(entry, dict) else None
    if isinstance(key, str) and key.isalnum() and isinstance(sha, str):
        return key, sha
    return None, None


def _index_store(cache: Path, index_key: str, key: str, sha256: str) -> None:
    """Record the key; keep the most recent entries. Best effort: a failure only costs a rehash."""
    entries = _read_index(cache)
    entries[index_key] = {"key": key, "sha256": sha256, "used": time.time()}
    if len(entries) > INDEX_ENTRIES:
        recent = sorted(entries.items(), key=lambda kv: kv[1].get("used", 0), reverse=True)
        entries = dict(recent[:INDEX_ENTRIES])
    with suppress(OSError), _atomic(cache / "index.json") as out:
        out.write(json.dumps({"version": CACHE_VERSION, "entries": entries}).encode())


# ---------------------------------------------------------------- the cache directory


def usable_cache_dir(cache_dir: Path | None) -> Path:
    """`cache_dir` (or the default) if we can write in it, else a private temporary directory."""
    first = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    private = Path(tempfile.gettempdir()) / f"charrnn-{_uid()}"
    if _writable(first):
        return first
    if _writable(private / "corpus") and _ours(private):
        return private / "corpus"
    try:
        return Path(tempfile.mkdtemp(prefix="charrnn-corpus-"))
    except OSError as e:
        raise CorpusError(
            f"no writable directory for the corpus cache ({_why(e)}): "
            "set CHARRNN_CACHE_DIR to a writable directory"
        ) from None


def _ours(directory: Path) -> bool:
    """A real directory owned by us (a shared /tmp could hold someone else's trap)."""
    try:
        st = directory.lstat()
    except OSError:
        return False
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return stat.S_ISDIR(st.st_mode) and mine


def _uid() -> str:
    return str(os.getuid()) if hasattr(os, "getuid") else "user"


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
        return True
    except OSError:
        return False
