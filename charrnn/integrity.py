"""Proof that a corpus cache entry is what was written (used by charrnn/corpus.py).

An entry is three files: the ids (.npy), the vocabulary (.npy) and its JSON metadata, written
last. The metadata carries:

* `ids_sha256`, `vocab_sha256`: the sha256 of each file's bytes as written;
* `ids_stamp`: (size, mtime_ns, ctime_ns, inode, device) of the ids file when it was last found
  to match its sha256, or None;
* `check`: the sha256 of the metadata's other fields, so an edited field is seen too.

On every open the metadata's `check` and the vocabulary's digest are verified (a few KiB), and the
ids file's shape against the metadata (a truncated file cannot be mapped). The ids themselves are
read in full only when their stamp differs from the recorded one: after a build, after the cache
was copied or restored, after any write to the file. Why this is as strong as a full read on
every start for damage done through the file system: every write, truncation or replacement
changes the file's ctime (or size, or inode), and no program can set a ctime back. Why not a
full read every time: the ids are as big as the corpus (4 bytes a character for a vocabulary
past 65,535 symbols), a second or more per GiB at every start. What it does not see: bits that
rot on the medium with no write at all, which is the storage's own checksums' job.

A stamp is recorded only once the file is RACY_NS old: file times are kept in coarse clock
ticks, so a write in the same tick as the stamp could leave it unchanged (git's "racy clean"
rule). The first open of a fresh entry therefore reads it in full once more.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

RACY_NS = 2_000_000_000  # a file's stamp is trusted once it is this old
_FIELDS = ("ids_sha256", "vocab_sha256", "ids_stamp", "check")


def digest(path: Path, chunk: int = 1 << 22) -> str:
    """The sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(chunk):
            h.update(data)
    return h.hexdigest()


def stamp(path: Path) -> list[int] | None:
    """(size, mtime_ns, ctime_ns, inode, device) of `path`; None while it is too fresh to
    trust (see RACY_NS) or when it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return None
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _self_digest(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "check"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def seal(meta: dict[str, Any], ids_sha256: str, vocab_sha256: str, ids_path: Path) -> dict:
    """`meta` with the digests of the entry's two files (as written), the ids' stamp and its
    own check."""
    out = dict(meta, ids_sha256=ids_sha256, vocab_sha256=vocab_sha256)
    out["ids_stamp"] = stamp(ids_path)
    out["check"] = _self_digest(out)
    return out


def restamp(meta: dict[str, Any], ids_path: Path) -> dict[str, Any] | None:
    """`meta` with the ids' current stamp (after they were found sound), or None if the stamp
    is not ready to be trusted yet or is already recorded."""
    now = stamp(ids_path)
    if now is None or now == meta.get("ids_stamp"):
        return None
    out = dict(meta, ids_stamp=now)
    out["check"] = _self_digest(out)
    return out


def sealed(meta: dict[str, Any]) -> bool:
    """Whether the metadata still matches its own check."""
    return all(k in meta for k in _FIELDS) and meta["check"] == _self_digest(meta)


def problem(meta: dict[str, Any], ids_path: Path, vocab_path: Path) -> str | None:
    """What is wrong with a sealed entry, as a phrase; None when it proves sound. The ids are
    read in full only when their stamp differs from the recorded one (see the module doc).
    A file that cannot be read raises its OSError."""
    if not sealed(meta):
        return "its metadata does not match its checksum"
    if digest(vocab_path) != meta["vocab_sha256"]:  # OSError: for the caller to judge
        return "its vocabulary does not match its checksum"
    recorded = meta["ids_stamp"]
    if recorded is not None and stamp(ids_path) == recorded:
        return None
    if digest(ids_path) != meta["ids_sha256"]:
        return "its ids do not match their checksum"
    return None
