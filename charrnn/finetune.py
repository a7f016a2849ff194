"""Continuing from a checkpoint on text whose characters differ from its vocabulary.

`--init-from CKPT` onto text with characters the checkpoint lacks extends the vocabulary: the
new vocabulary is the union (code-point order); every trained character keeps its learned
weights (its input column of weight_ih_l0, or its row of encoder.weight, and its rows of
decoder.weight and decoder.bias, each moved to the character's new id); a new character gets
the fresh values a new model of the new size draws (PyTorch's initialisation); characters the
new text lacks stay. `--resume` continues a run exactly and never changes its vocabulary: text
with characters the checkpoint lacks is refused there.

The corpus is encoded in its own vocabulary; `remap_ids` re-codes it into the model's.
"""

from __future__ import annotations

import tempfile

import numpy as np

from charrnn.errors import CheckpointError, UsageError
from charrnn.vocab import Vocab, escape

REMAP_IN_MEMORY = 1 << 24  # corpora up to this many characters are re-coded in memory
_BLOCK = 1 << 22  # characters re-coded at a time into the temporary file


def fit_vocab(ckpt: Vocab, corpus: Vocab, resuming: bool) -> tuple[Vocab, str | None]:
    """The vocabulary a run continuing from a checkpoint uses, and a line saying what was added
    (None: nothing). Resuming: the checkpoint's, or a CheckpointError if the text has
    characters it lacks. Byte and character vocabularies never mix."""
    if ckpt.kind != corpus.kind:
        raise UsageError(
            f"the checkpoint is a {_kind(ckpt)} model and the text is read as "
            f"{_kind(corpus)}s: {'leave out' if corpus.is_bytes else 'add'} --bytes"
        )
    new = np.setdiff1d(corpus.codepoints, ckpt.codepoints)  # (A,) code points to add
    if new.size == 0:
        return ckpt, None
    shown = ", ".join(repr(escape(chr(int(c)))) for c in new[:8])
    more = f" and {new.size - 8} more" if new.size > 8 else ""
    if resuming:
        raise CheckpointError(
            f"vocabulary mismatch: the text has {new.size} character(s) the checkpoint does not "
            f"know ({shown}{more}); --resume continues a run on its own text: use --init-from to "
            "fine-tune onto new text (the vocabulary is extended)"
        )
    merged = Vocab(np.union1d(ckpt.codepoints, corpus.codepoints))
    note = (
        f"extended the vocabulary by {new.size} character(s) the checkpoint lacks: {shown}{more} "
        f"({len(ckpt)} -> {len(merged)} symbols; the new ones start untrained)"
    )
    return merged, note


def _kind(v: Vocab) -> str:
    return "byte" if v.is_bytes else "character"


def carry_weights(model, config, params: dict, old: Vocab, new: Vocab) -> None:
    """Copy a checkpoint's weights (config, params over vocabulary `old`) into `model`, whose
    vocabulary `new` holds every symbol of `old`: vocabulary-sized rows and columns go to their
    symbols' new ids, the rest as they are. The model's other rows keep their values."""
    from charrnn.model import CharRNN

    trained = CharRNN.from_params(config, params, model.dtype)  # validated
    if new == old:
        model.flat[:] = trained.flat
        return
    at = np.searchsorted(new.codepoints, old.codepoints)  # (V_old,) new id of each old symbol
    if not np.array_equal(new.codepoints[np.minimum(at, len(new) - 1)], old.codepoints):
        raise ValueError("the new vocabulary must hold every symbol of the old one")
    by_symbol = {"decoder.weight", "decoder.bias", "encoder.weight"}
    for name, value in trained.params.items():
        dst = model.params[name]
        if name == "weight_ih_l0" and not config.embed:
            dst[:, at] = value  # one-hot input: a column per symbol
        elif name in by_symbol:
            dst[at] = value
        else:
            dst[...] = value


def remap_ids(ids: np.ndarray, old: Vocab, new: Vocab, spill_dir=None) -> np.ndarray:
    """ids (N,) in vocabulary `old` as ids (N,) of `new` (which holds every symbol of `old`),
    in memory for small corpora, else in an unlinked, memory-mapped temporary file in
    `spill_dir` (memory stays bounded, as with the corpus cache)."""
    lut = np.searchsorted(new.codepoints, old.codepoints).astype(new.dtype)  # (V_old,)
    n = int(ids.shape[0])
    if n <= REMAP_IN_MEMORY:
        return lut[np.asarray(ids)]
    f = tempfile.TemporaryFile(dir=spill_dir, prefix="charrnn-remap-")  # noqa: SIM115
    out = np.memmap(f, dtype=new.dtype, mode="w+", shape=(n,))
    for a in range(0, n, _BLOCK):
        out[a : a + _BLOCK] = lut[np.asarray(ids[a : a + _BLOCK])]
    out.flush()
    return out
