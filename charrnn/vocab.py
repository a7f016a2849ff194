"""The vocabulary: the sorted set of Unicode code points of a corpus, one symbol each; or, for a
byte model (`charrnn train --bytes`), the 256 byte values.

A byte vocabulary holds the code points 0..255 and kind "bytes": byte b is the symbol chr(b)
(Latin-1), so every str-based path (encode, decode, sampling) works unchanged on its symbols.
`symbols` turns what a user gives (text or bytes) into a model's symbols; `raw` turns symbols
back into the bytes to write; `readable` into text to show.
"""

from __future__ import annotations

import numpy as np

from charrnn.errors import CharrnnError


def _codepoints(text: str) -> np.ndarray:
    """(N,) uint32 code points of `text` (surrogates included, as Python holds them)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of a str; bytes that arrived undecodable (surrogate escapes, as in sys.argv)
    become those bytes again; any other lone surrogate becomes '?'."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def escape(ch: str) -> str:
    """A printable rendering of one symbol: '\\n', '\\t', 'U+0000' for other non-printables."""
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␠"}
    if ch in named:
        return named[ch]
    return ch if ch.isprintable() else f"U+{ord(ch):04X}"


KINDS = ("chars", "bytes")


def unit(kind: str) -> str:
    """What one symbol of a vocabulary kind ("chars" or "bytes") is called in figures."""
    return "byte" if kind == "bytes" else "char"


class Vocab:
    """Maps characters to ids 0..V-1 in code-point order.

    `codepoints` is a sorted, distinct int32 array (V,). Stored in every checkpoint as `vocab`;
    kind "bytes" as meta["vocab_kind"].
    """

    def __init__(self, codepoints, kind: str = "chars") -> None:
        if kind not in KINDS:
            raise CharrnnError(f"unknown vocabulary kind {kind!r}: chars or bytes")
        self.kind = kind
        cps = np.asarray(codepoints, dtype=np.int64).reshape(-1)
        if cps.size == 0:
            raise CharrnnError("the vocabulary is empty")
        if np.any(cps < 0) or np.any(cps > 0x10FFFF):
            raise CharrnnError("the vocabulary holds values that are not Unicode code points")
        if np.any(np.diff(cps) <= 0):
            raise CharrnnError("the vocabulary is not sorted and distinct")
        if kind == "bytes" and not np.array_equal(cps, np.arange(256)):
            raise CharrnnError("a byte vocabulary holds exactly the 256 byte values 0..255")
        self.codepoints = cps.astype(np.int32)
        self._chars = [chr(int(c)) for c in self.codepoints]

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(np.unique(_codepoints(text)))

    @classmethod
    def of_bytes(cls) -> Vocab:
        """The 256 byte values (a byte model's vocabulary)."""
        return cls(np.arange(256), kind="bytes")

    @property
    def is_bytes(self) -> bool:
        return self.kind == "bytes"

    def symbols(self, text: str | bytes) -> str:
        """What a user gives, as this vocabulary's symbols. Byte vocabulary: bytes as they are,
        text as its UTF-8 bytes. Character vocabulary: text as it is, bytes decoded as UTF-8
        (invalid bytes: a CharrnnError)."""
        if self.is_bytes:
            return bytes(_utf8(text) if isinstance(text, str) else text).decode("latin-1")
        if isinstance(text, str):
            return text
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CharrnnError(f"invalid UTF-8 at byte {e.start} of the text") from None

    def raw(self, symbols: str) -> bytes:
        """The bytes to write for a string of this vocabulary's symbols (UTF-8 for characters;
        a lone surrogate, which UTF-8 cannot hold, becomes '?')."""
        if self.is_bytes:
            return symbols.encode("latin-1")
        return symbols.encode("utf-8", "replace")

    def readable(self, symbols: str) -> str:
        """Symbols as text to show a person: a byte model's bytes decoded as UTF-8 (invalid
        bytes as U+FFFD); characters as they are."""
        return self.raw(symbols).decode("utf-8", "replace") if self.is_bytes else symbols

    def __len__(self) -> int:
        return int(self.codepoints.size)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocab)
            and self.kind == other.kind
            and np.array_equal(self.codepoints, other.codepoints)
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.codepoints.tobytes()))

    @property
    def chars(self) -> list[str]:
        return list(self._chars)

    @property
    def dtype(self) -> np.dtype:
        """The narrowest unsigned integer type that holds every id."""
        n = len(self)
        return np.dtype(np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.uint32)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, in order of code."""
        cps = np.unique(_codepoints(text))
        return [chr(int(c)) for c in cps[~np.isin(cps, self.codepoints)]]

    def encode(self, text: str, unk: str = "error") -> np.ndarray:
        """Ids (N,) int32 for `text`. unk="error" raises naming the unknown characters;
        unk="skip" drops them."""
        cps = _codepoints(text).astype(np.int64)
        idx = np.searchsorted(self.codepoints, cps)
        idx_c = np.minimum(idx, len(self) - 1)
        known = self.codepoints[idx_c] == cps
        if not known.all():
            if unk == "skip":
                return idx_c[known].astype(np.int32)
            bad = self.unknown(text)
            shown = ", ".join(repr(escape(c)) for c in bad[:10])
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise CharrnnError(
                f"{len(bad)} character(s) not in the model's vocabulary: {shown}{more}"
                " (use --unk skip to leave them out)"
            )
        return idx_c.astype(np.int32)

    def decode(self, ids) -> str:
        chars = self._chars
        return "".join(chars[int(i)] for i in np.asarray(ids).reshape(-1))
