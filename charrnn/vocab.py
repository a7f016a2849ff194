"""The vocabulary: the sorted set of Unicode code points of a corpus, one symbol each."""

from __future__ import annotations

import numpy as np

from charrnn.errors import CharrnnError


def _codepoints(text: str) -> np.ndarray:
    """(N,) uint32 code points of `text` (surrogates included, as Python holds them)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def escape(ch: str) -> str:
    """A printable rendering of one symbol: '\\n', '\\t', 'U+0000' for other non-printables."""
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␠"}
    if ch in named:
        return named[ch]
    return ch if ch.isprintable() else f"U+{ord(ch):04X}"


class Vocab:
    """Maps characters to ids 0..V-1 in code-point order.

    `codepoints` is a sorted, distinct int32 array (V,). Stored in every checkpoint as `vocab`.
    """

    def __init__(self, codepoints) -> None:
        cps = np.asarray(codepoints, dtype=np.int64).reshape(-1)
        if cps.size == 0:
            raise CharrnnError("the vocabulary is empty")
        if np.any(cps < 0) or np.any(cps > 0x10FFFF):
            raise CharrnnError("the vocabulary holds values that are not Unicode code points")
        if np.any(np.diff(cps) <= 0):
            raise CharrnnError("the vocabulary is not sorted and distinct")
        self.codepoints = cps.astype(np.int32)
        self._chars = [chr(int(c)) for c in self.codepoints]

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(np.unique(_codepoints(text)))

    def __len__(self) -> int:
        return int(self.codepoints.size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and np.array_equal(self.codepoints, other.codepoints)

    def __hash__(self) -> int:
        return hash(self.codepoints.tobytes())

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
