"""Lines and documents to score one by one (`charrnn eval --per line|doc`, `Model.score_lines`).

A unit is a line (without its newline), a document (the non-blank lines between blank lines,
joined by newlines), or, with several files and --per doc, a whole file. Units keep their raw
bytes; each model reads them as its own symbols (UTF-8 characters, or bytes) in `encode`.

What is scored. A unit U is scored as the model's probability of U followed by a newline, from
the state the model is in after reading one newline from the zero state: the ids [\\n] + U + [\\n],
every one after the first predicted (`sequence`). So a unit of n symbols has n + 1 predictions,
and its score is -log p(U, end of line | start of a line) / (n + 1). Why this state and not the
zero state:

* every symbol of the unit is predicted, its first one included (from the zero state the first
  symbol is only context, and a one-character line would have nothing scored);
* in training a line is always read after a newline, so this state is the model's own picture
  of "the start of a line"; the zero state it meets only at the start of an epoch;
* the closing newline makes the score that of a complete line: a line that stops mid-sentence
  is unlikely, and an empty line has a score (the probability of a newline after a newline);
* every unit starts from the same state, so a line scores the same wherever it stands: rows can
  be sorted, compared and classified, and scored side by side. (To float32 precision: the
  lines scored beside it can change the last roundings, about 1e-9 relative; a file is cut
  into the same batches on every run, so its figures repeat exactly.)

A model whose vocabulary has no newline cannot score units (it has no line boundaries).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from charrnn.errors import CharrnnError, CorpusError, UsageError
from charrnn.vocab import Vocab, escape

PERS = ("line", "doc")
UNKS = ("error", "skip")
STDIN = "-"
_BOM = b"\xef\xbb\xbf"
_ESCAPES = (0xDC80, 0xDCFF)  # undecodable bytes, as Python's surrogateescape decodes them


@dataclass
class Unit:
    """One line, document or file to score."""

    source: str  # the path as given, or "<stdin>"
    line: int  # 1-based line of the source where the unit starts
    raw: bytes  # its bytes, without the closing newline
    offset: int  # bytes of all sources read up to the end of this unit (for progress)


@dataclass
class Encoded:
    """A unit in one model's ids: `ids` (n,) the unit's symbols the model knows, `skipped` the
    symbols left out (unknown characters and undecodable bytes, with unk="skip")."""

    ids: np.ndarray
    skipped: int

    @property
    def chars(self) -> int:
        """Symbols of the unit, its closing newline included (scored or skipped)."""
        return int(self.ids.size) + 1 + self.skipped


# --------------------------------------------------------------------------------- reading


def check_sources(sources: list[str]) -> list[str]:
    """The sources, each an existing readable file, or stdin (once); else one clear error. Checked
    before any work, so a bad second file is not found after the first one's rows."""
    from charrnn.corpus import _check_file  # the corpus reader's own check and messages

    if sources.count(STDIN) > 1:
        raise UsageError("stdin (-) can be given only once")
    for s in sources:
        if s != STDIN:
            _check_file(s)
    return sources


def total_bytes(sources: list[str]) -> int | None:
    """The bytes all sources hold, when they are all regular files (else None: a pipe's size is
    not known before it ends)."""
    total = 0
    for s in sources:
        try:
            st = os.stat(s) if s != STDIN else os.fstat(sys.stdin.fileno())
        except (OSError, ValueError, AttributeError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        total += st.st_size
    return total


def read_units(sources: list[str], per: str, *, strip_bom: bool = True) -> Iterator[Unit]:
    """The units of the sources, in order, read as they arrive (a pipe's first line is yielded
    before the pipe ends). per="line": one per line; "doc": one per run of non-blank lines (a
    blank line is empty or holds only whitespace), or one per source when there are several.
    strip_bom drops a UTF-8 byte order mark at the start of each source (character models)."""
    if per not in PERS:
        raise UsageError(f"--per must be line or doc, got {per!r}")
    done = 0  # bytes of the sources before this one
    for source in sources:
        label = "<stdin>" if source == STDIN else source
        with _open(source) as f:
            if per == "doc" and len(sources) > 1:
                data = _read_all(f, label)
                done += len(data)
                data = data[3:] if strip_bom and data.startswith(_BOM) else data
                yield Unit(label, 1, data[:-1] if data.endswith(b"\n") else data, done)
                continue
            read = [0]  # bytes of this source read so far
            lines = _lines(f, label, strip_bom, read)
            units = _paragraphs(lines, label) if per == "doc" else _each_line(lines, label)
            for unit in units:
                unit.offset = done + read[0]
                yield unit
            done += read[0]


def _open(source: str):
    if source == STDIN:
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:
            raise CorpusError("<stdin>: standard input is closed (pipe text in, or give a file)")
        return _NoClose(stdin)
    try:
        return open(source, "rb")  # noqa: SIM115 - closed by the caller's with
    except OSError as e:
        raise CorpusError(f"{source}: cannot read it ({e.strerror or e})") from None


class _NoClose:
    """stdin in a with statement that leaves it open."""

    def __init__(self, f) -> None:
        self.f = f

    def __enter__(self):
        return self.f

    def __exit__(self, *exc) -> None:
        pass


def _read_all(f, label: str) -> bytes:
    try:
        return f.read()
    except OSError as e:
        raise CorpusError(f"{label}: cannot read it ({e.strerror or e})") from None


def _lines(f, label: str, strip_bom: bool, read: list[int]) -> Iterator[bytes]:
    """Each line without its newline (a last line without one counts; an empty source has
    none); read[0] counts the bytes read."""
    first = True
    while True:
        try:
            line = f.readline()
        except OSError as e:
            raise CorpusError(f"{label}: cannot read it ({e.strerror or e})") from None
        if not line:
            return
        read[0] += len(line)
        if first and strip_bom and line.startswith(_BOM):
            line = line[3:]
        first = False
        yield line[:-1] if line.endswith(b"\n") else line


def _each_line(lines, label: str) -> Iterator[Unit]:
    for number, line in enumerate(lines, 1):
        yield Unit(label, number, line, 0)


def _paragraphs(lines, label: str) -> Iterator[Unit]:
    parts: list[bytes] = []
    start = 0
    for number, line in enumerate(lines, 1):
        if line.strip():
            if not parts:
                start = number
            parts.append(line)
        elif parts:
            yield Unit(label, start, b"\n".join(parts), 0)
            parts = []
    if parts:
        yield Unit(label, start, b"\n".join(parts), 0)


# --------------------------------------------------------------------------------- encoding


def newline_id(vocab: Vocab, name: str) -> int:
    """The id of the newline, which starts and ends every unit; a clear error without one."""
    ids = np.flatnonzero(vocab.codepoints == 10)
    if ids.size == 0:
        raise CharrnnError(
            f"{name}'s vocabulary has no newline, so it has no line boundaries to score lines or "
            "documents from: score the whole text (without --per)"
        )
    return int(ids[0])


def encode(raw: bytes | str, vocab: Vocab, unk: str, where: str, name: str) -> Encoded:
    """A unit's symbols as ids of `vocab`. Characters: raw is read as UTF-8; an undecodable
    byte, like a character the model does not know, is an error naming `where` (unk="error")
    or left out and counted (unk="skip"). Bytes: every byte is a symbol."""
    if unk not in UNKS:
        raise UsageError(f"--unk must be error or skip, got {unk!r}")
    if isinstance(raw, str):
        text = vocab.symbols(raw) if vocab.is_bytes else raw
    elif vocab.is_bytes:
        text = raw.decode("latin-1")
    else:
        text = raw.decode("utf-8", "surrogateescape")
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
    idx = np.minimum(np.searchsorted(vocab.codepoints, cps), len(vocab) - 1)
    known = vocab.codepoints[idx] == cps  # (n,)
    if known.all():
        return Encoded(idx.astype(np.int32), 0)
    if unk == "error":
        bad = (cps >= _ESCAPES[0]) & (cps <= _ESCAPES[1]) & ~known
        if bad.any() and isinstance(raw, bytes):
            at = len(text[: int(np.argmax(bad))].encode("utf-8", "surrogateescape"))
            raise CharrnnError(
                f"{where}: invalid UTF-8 at byte {at} (use --unk skip to leave bad bytes out)"
            )
        unknown = [chr(int(c)) for c in np.unique(cps[~known])]
        shown = ", ".join(repr(escape(c)) for c in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise CharrnnError(
            f"{where}: {len(unknown)} character(s) not in {name}'s vocabulary: {shown}{more} "
            "(use --unk skip to leave them out)"
        )
    return Encoded(idx[known].astype(np.int32), int((~known).sum()))


def sequence(enc: Encoded, nl: int) -> np.ndarray:
    """The ids a unit is scored as: (n + 2,) int32 [nl] + ids + [nl] (see the module doc)."""
    out = np.empty(enc.ids.size + 2, np.int32)
    out[0] = out[-1] = nl
    out[1:-1] = enc.ids
    return out


def strip_newline(item: str | bytes) -> str | bytes:
    """An API line as a unit: one trailing newline (as f.readlines() leaves) is dropped."""
    end = "\n" if isinstance(item, str) else b"\n"
    return item[:-1] if item.endswith(end) else item


def as_units(lines: Iterable[str | bytes]) -> list[str | bytes]:
    """API input: each item a str or bytes (else UsageError), its trailing newline dropped."""
    if isinstance(lines, (str, bytes)):
        raise UsageError("score_lines takes a list of lines, not one string (split it first)")
    out = []
    for i, item in enumerate(lines):
        if not isinstance(item, (str, bytes, bytearray)):
            raise UsageError(f"line {i + 1} is a {type(item).__name__}, not a str or bytes")
        out.append(strip_newline(bytes(item) if isinstance(item, bytearray) else item))
    return out
