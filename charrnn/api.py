"""The Python API: load a checkpoint, sample from it, score text with it.

    import charrnn

    m = charrnn.load("checkpoints/shakespeare-best.npz")
    m.sample(seed="ROMEO:", n=200, temperature=0.8, rng_seed=1)  # -> str (bytes: byte model)
    m.score("To be, or not to be")                               # -> float, nats per char
    m.score_lines(["To be,", "or not to be"])                    # -> (2,) float64 array
    m.surprisal("To be")                                         # -> (4,) float64 array

Everything returns plain Python values and NumPy arrays; every problem raises one of the
project's own exceptions (charrnn.CharrnnError and its subclasses: UsageError for a bad
argument, CheckpointError for a bad checkpoint), with the message the CLI prints. Results are
the CLI's: `sample` gives the text `charrnn sample --no-echo-seed` prints for the same options
and --rng-seed; `score` is `charrnn eval FILE`'s nats/char; `score_lines` is `charrnn eval
--per line`'s. A Model is not meant to be used from several threads at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.errors import CharrnnError, UsageError


def load(path: str | os.PathLike, threads: int = 0) -> Model:
    """The model in the checkpoint at `path` (a file, or a folder: its newest run's best).
    threads: cores scoring may use (0: all). CheckpointError if it cannot be used."""
    from charrnn.checkpoint import resolve_checkpoint
    from charrnn.evaluate import load_model

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise UsageError(f"threads must be 0 (all cores) or a positive int, got {threads!r}")
    resolved = resolve_checkpoint(path)
    ckpt, model = load_model(resolved, threads)
    return Model(resolved, ckpt, model)


class Model:
    """A trained model. Attributes: path (Path), name (str | None), config (dict: the model
    config), vocab (list[str]: the symbols in id order; a byte model's are chr(0)..chr(255)),
    is_bytes (bool), meta (dict: everything else the checkpoint says)."""

    def __init__(self, path: Path, ckpt, model) -> None:
        self.path = Path(path)
        self.name = ckpt.name
        self.config: dict[str, Any] = ckpt.config.to_dict()
        self.meta: dict[str, Any] = dict(ckpt.meta)
        self._ckpt = ckpt
        self._vocab = ckpt.vocab
        self._model = model.copy(model.threads, frozen=True)  # weights derived once
        self._weights = None  # laid out for sampling on first use

    @property
    def vocab(self) -> list[str]:
        return self._vocab.chars

    @property
    def is_bytes(self) -> bool:
        return self._vocab.is_bytes

    def __repr__(self) -> str:
        c = self.config
        kind = "bytes" if self.is_bytes else f"{len(self._vocab)} symbols"
        return f"<charrnn.Model {self.name or self.path.name}: {c['cell']} {c['layers']}x" + (
            f"{c['hidden']}, {kind}>"
        )

    # ------------------------------------------------------------------ sampling

    def sample(
        self,
        seed: str | bytes | None = None,
        n: int = 500,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        rng_seed: int | None = None,
        stop: str | Iterable[str] | None = None,
        unk: str = "error",
    ) -> str | bytes:
        """n characters generated after `seed` (the seed itself is not included), as a str; a
        byte model returns bytes (its seed and stop strings may be str, taken as UTF-8, or
        bytes). Without a seed, generation starts after a newline. temperature 0 is greedy;
        top_k, top_p truncate the distribution; stop ends the text right after the first stop
        string (included). The same rng_seed gives the same text (None: a random one)."""
        from charrnn.sample import SampleOptions, check_finite, prime_ids, sample_texts
        from charrnn.step import prepare

        _check_int("n", n, 0)
        if rng_seed is not None:
            _check_int("rng_seed", rng_seed, 0)
        if unk not in ("error", "skip"):
            raise UsageError(f"unk must be 'error' or 'skip', got {unk!r}")
        stops = (stop,) if isinstance(stop, (str, bytes)) else tuple(stop or ())
        options = SampleOptions(
            length=n,
            temperature=float(temperature),
            top_k=top_k,
            top_p=top_p,
            stop=tuple(self._vocab.symbols(s) for s in stops),
        ).validate()
        if self._weights is None:
            self._weights = prepare(self._ckpt.config, self._ckpt.params, np.float32)
            check_finite(self._weights)
        if rng_seed is None:
            import secrets

            rng_seed = secrets.randbits(32)
        rng = np.random.default_rng(rng_seed)
        symbols = self._vocab.symbols(seed) if seed is not None else None
        prime, _ = prime_ids(self._vocab, symbols, unk=unk, rng=rng)
        text = sample_texts(self._weights, self._vocab, prime, options, rng)[0]
        return self._vocab.raw(text) if self.is_bytes else text

    # ------------------------------------------------------------------ scoring

    def _ids(self, text: str | bytes, unk: str) -> np.ndarray:
        if not isinstance(text, (str, bytes, bytearray)):
            raise UsageError(f"text must be a str or bytes, got {type(text).__name__}")
        if unk not in ("error", "skip"):
            raise UsageError(f"unk must be 'error' or 'skip', got {unk!r}")
        from charrnn.units import encode

        return encode(bytes(text) if isinstance(text, bytearray) else text, self._vocab, unk,
                      "the text", self.name or self.path.name).ids  # fmt: skip

    def score(self, text: str | bytes, unk: str = "error") -> float:
        """Mean nats per character of `text`, read in one pass from the zero state (its first
        character is context: N - 1 of N are scored), as `charrnn eval FILE` reports it.
        bits per character = score / math.log(2). unk="skip" leaves out characters the model
        does not know (and bytes that are not UTF-8)."""
        return self._score(text, unk, keep=False).nats_per_char

    def surprisal(self, text: str | bytes, unk: str = "error") -> np.ndarray:
        """(N-1,) float64: the nats of each character of `text` after the first, as `score`
        reads it (score(text) is their mean)."""
        return self._score(text, unk, keep=True).surprisal

    def _score(self, text, unk, keep):
        from charrnn.evaluate import score_ids

        ids = self._ids(text, unk)
        return score_ids(self._model, ids, threads=self._model.threads, keep=keep)

    def score_lines(self, lines: Iterable[str | bytes], unk: str = "error") -> np.ndarray:
        """(N,) float64 nats per character of each line on its own, as `charrnn eval --per
        line` scores them: the line followed by a newline, from the state after the model has
        read a newline (one trailing newline on an item is the same as none; a newline inside
        one is a character of it). bits = nats / math.log(2)."""
        from charrnn.perline import score_sequences
        from charrnn.units import as_units, encode, newline_id, sequence

        if unk not in ("error", "skip"):
            raise UsageError(f"unk must be 'error' or 'skip', got {unk!r}")
        name = self.name or self.path.name
        nl = newline_id(self._vocab, name)
        encoded = [
            encode(u, self._vocab, unk, f"line {i + 1}", name)
            for i, u in enumerate(as_units(lines))
        ]
        nats = score_sequences(self._model, [sequence(e, nl) for e in encoded])
        return nats / np.array([e.ids.size + 1 for e in encoded], dtype=np.float64)


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise UsageError(f"{name} must be an int >= {low}, got {value!r}")


__all__ = ["CharrnnError", "Model", "load"]
