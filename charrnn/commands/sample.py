"""`charrnn sample`: load a checkpoint, prime it with a seed, stream characters to stdout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from charrnn.commands import handle_errors

HELP = (
    "Generate text from a trained model, streamed to stdout as it is made.\n\n"
    "Uses the best checkpoint of the most recent run in checkpoints/, or --checkpoint. "
    "The seed is fed to the model first and printed before what follows it (--no-echo-seed "
    "leaves it out); without one, generation starts after a newline. The same checkpoint, "
    "seed, options and --rng-seed give the same text on every run. A sample ends after -n "
    "characters, or right after a --stop string (which is printed).\n\n"
    "Examples:\n\n"
    "  charrnn sample -n 300 --seed 'ROMEO:' --temperature 0.8\n\n"
    "  charrnn sample -c code-best.npz --top-p 0.9 --stop '\\n\\n' --rng-seed 7\n\n"
    "  echo 'First Citizen:' | charrnn sample --seed - --num-samples 4 --json\n"
)

SAMPLING = "Sampling"
SEED = "Seed"
OUTPUT = "Output"


def command(
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        "-c",
        help="Checkpoint file, or a folder to take its newest run's best from. "
        "\\[default: checkpoints/]",
    ),
    length: int = typer.Option(
        500, "--length", "-n", help="Characters to generate per sample (0: the seed only)."
    ),
    temperature: float = typer.Option(
        1.0,
        "--temperature",
        "-t",
        help="Sharpen (<1) or flatten (>1) the distribution; 0 = always the likeliest.",
        rich_help_panel=SAMPLING,
    ),
    top_k: int | None = typer.Option(
        None, "--top-k", help="Draw only from the k likeliest characters.", rich_help_panel=SAMPLING
    ),
    top_p: float | None = typer.Option(
        None,
        "--top-p",
        help="Nucleus sampling: draw from the likeliest characters holding this much "
        "probability, in (0, 1].",
        rich_help_panel=SAMPLING,
    ),
    rng_seed: int | None = typer.Option(
        None,
        "--rng-seed",
        help="Seed of the random draws, for repeatable text. \\[default: random; --json shows it]",
        rich_help_panel=SAMPLING,
    ),
    num_samples: int = typer.Option(
        1,
        "--num-samples",
        help="Independent samples, generated together as a batch.",
        rich_help_panel=SAMPLING,
    ),
    stop: list[str] = typer.Option(
        None,
        "--stop",
        help="End a sample right after this string (repeatable); \\n and \\t are understood.",
        rich_help_panel=SAMPLING,
    ),
    seed: str | None = typer.Option(
        None,
        "--seed",
        "-s",
        help="Prime text fed to the model first; - reads it from stdin.",
        rich_help_panel=SEED,
    ),
    seed_random: bool = typer.Option(
        False,
        "--seed-random",
        help="Without --seed: start each sample from a random character (printed).",
        rich_help_panel=SEED,
    ),
    echo_seed: bool = typer.Option(
        True, "--echo-seed/--no-echo-seed", help="Print the seed first.", rich_help_panel=SEED
    ),
    unk: str = typer.Option(
        "error",
        "--unk",
        help="Seed characters the model never saw: error, or skip them.",
        rich_help_panel=SEED,
    ),
    separator: str | None = typer.Option(
        None,
        "--separator",
        help="Printed between samples; \\n and \\t are understood. \\[default: a blank line]",
        rich_help_panel=OUTPUT,
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object (texts, checkpoint, settings) instead.",
        rich_help_panel=OUTPUT,
    ),
    engine: str = typer.Option("auto", "--engine", hidden=True),
) -> None:
    try:
        _sample(**locals())
    except KeyboardInterrupt:  # Ctrl-C: stop quietly, as a shell expects
        raise typer.Exit(130) from None


command.__doc__ = HELP
command = handle_errors(command)


def _unescape(s: str) -> str:
    """Read \\n, \\t and \\\\ in a separator or stop string typed on a command line."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[s[i + 1]])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _sample(
    checkpoint, length, temperature, top_k, top_p, rng_seed, num_samples, stop, seed,
    seed_random, echo_seed, unk, separator, json_out, engine,
) -> None:  # fmt: skip
    # BLAS threads only get in the way of batch-1 mat-vecs (and fight other work on the box)
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from charrnn.errors import UsageError
    from charrnn.sample import SampleOptions

    if seed is not None and seed_random:
        raise UsageError("use either --seed or --seed-random, not both")
    if rng_seed is not None and rng_seed < 0:
        raise UsageError(f"--rng-seed must be 0 or more, got {rng_seed}")
    if unk not in ("error", "skip"):
        raise UsageError(f"--unk must be error or skip, got {unk!r}")
    if engine not in ("auto", "numpy", "numba"):
        raise UsageError(f"--engine must be auto, numpy or numba, got {engine!r}")
    options = SampleOptions(
        length=length,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        num_samples=num_samples,
        stop=tuple(_unescape(s) for s in stop or ()),
    ).validate()
    sep = None if separator is None else _unescape(separator)
    seed_text = _read_seed(seed)

    import dataclasses

    import numpy as np

    from charrnn.checkpoint import load_finite, resolve_checkpoint
    from charrnn.footprint import check_sampling
    from charrnn.sample import generate, prime_ids
    from charrnn.step import prepare

    path = resolve_checkpoint(checkpoint)
    ckpt = load_finite(path)
    vocab = ckpt.vocab
    seed_text = _seed_symbols(seed_text, vocab)
    if vocab.is_bytes:  # a byte model: what was typed is taken as its UTF-8 bytes
        options = dataclasses.replace(options, stop=tuple(map(vocab.symbols, options.stop)))
        sep = None if sep is None else vocab.symbols(sep)
    weights = prepare(ckpt.config, ckpt.params, np.float32)
    if rng_seed is None:
        import secrets

        rng_seed = secrets.randbits(32)
    rng = np.random.default_rng(rng_seed)
    kept = json_out or num_samples > 1  # samples after the first wait in memory to be printed
    top = int(ckpt.vocab.codepoints.max())
    width = 1 if top < 0x100 else 2 if top < 0x10000 else 4  # bytes a character of text takes
    check_sampling(ckpt.config, num_samples, length, len(seed_text or "") + 1, kept, width)
    prime, starts = prime_ids(
        ckpt.vocab, seed_text, num_samples=num_samples, seed_random=seed_random, unk=unk, rng=rng
    )
    if not echo_seed:
        starts = [""] * num_samples
    pieces = generate(weights, ckpt.vocab, prime, options, rng, engine=engine, on_wait=_notice)

    if json_out:
        texts = list(starts)
        for piece in pieces:
            texts[piece.row] += piece.text
        texts = [vocab.readable(t) for t in texts]  # a byte model's bytes as UTF-8 text
        seed_shown = None if seed_text is None else vocab.readable(seed_text)
        _write_json(path, texts, seed_shown, seed_random, echo_seed, unk, options, rng_seed)
        return
    _stream(pieces, starts, sep, vocab)


def _notice(message: str) -> None:
    """A diagnostic for a person watching (stderr, on a terminal only)."""
    if sys.stderr.isatty():
        print(f"charrnn: {message}...", file=sys.stderr, flush=True)


def _read_seed(seed: str | None) -> str | bytes | None:
    """The seed as typed, or stdin's bytes for `--seed -` (decoded once the model is known)."""
    if seed != "-":
        return seed or None
    from charrnn.resources import read_bounded

    data = read_bounded(getattr(sys.stdin, "buffer", sys.stdin), "the seed on stdin")
    return data or None


def _seed_symbols(seed: str | bytes | None, vocab) -> str | None:
    """The seed as the model's symbols: a byte model takes bytes as they are and text as UTF-8;
    a character model needs stdin's bytes to be UTF-8."""
    from charrnn.errors import CharrnnError

    if seed is None or vocab.is_bytes:
        return None if seed is None else vocab.symbols(seed)
    if isinstance(seed, bytes):
        try:
            return seed.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CharrnnError(f"the seed on stdin is not valid UTF-8 ({e.reason})") from None
    return seed


class _Writer:
    """Whole characters as UTF-8 bytes to stdout, flushed at once (the text is the payload); a
    byte model's symbols as the raw bytes they are."""

    def __init__(self, vocab=None) -> None:
        self.out = getattr(sys.stdout, "buffer", None)
        self.tty = sys.stdout.isatty()
        self.last = ""
        self.vocab = vocab

    def write(self, text: str) -> None:
        if not text:
            return
        if self.vocab is not None:
            data = self.vocab.raw(text)
        else:
            data = text.encode("utf-8", "replace")  # lone surrogates (never in UTF-8 text) -> ?
        if self.out is None:
            sys.stdout.write(data.decode("utf-8", "replace"))
            sys.stdout.flush()
        else:
            self.out.write(data)
            self.out.flush()
        self.last = text[-1]


def _stream(pieces, starts: list[str], sep: str | None, vocab=None) -> None:
    """Print sample 0 as it comes; later samples are buffered until the ones before are out."""
    out = _Writer(vocab)
    k = len(starts)
    buffers = list(starts)
    finished = [False] * k
    current = 0
    out.write(buffers[0])
    buffers[0] = ""

    def separate() -> None:
        if sep is not None:
            out.write(sep)
        elif out.last:
            out.write("\n" if out.last == "\n" else "\n\n")  # one blank line

    for piece in pieces:
        r = piece.row
        if r == current:
            out.write(piece.text)
        else:
            buffers[r] += piece.text
        finished[r] = finished[r] or piece.done
        while current < k - 1 and finished[current]:
            current += 1
            separate()
            out.write(buffers[current])
            buffers[current] = ""
    while current < k - 1:  # n = 0: nothing generated, seeds only
        current += 1
        separate()
        out.write(buffers[current])
        buffers[current] = ""
    if out.tty and out.last not in ("", "\n"):
        out.write("\n")  # leave the shell prompt on its own line


def _write_json(path, texts, seed, seed_random, echo_seed, unk, options, rng_seed) -> None:
    import json

    obj = {
        "checkpoint": str(path),
        "text": texts[0] if len(texts) == 1 else texts,
        "settings": {
            "length": options.length,
            "temperature": options.temperature,
            "top_k": options.top_k,
            "top_p": options.top_p,
            "num_samples": options.num_samples,
            "stop": list(options.stop),
            "rng_seed": rng_seed,
            "seed": seed,
            "seed_random": seed_random,
            "echo_seed": echo_seed,
            "unk": unk,
        },
    }
    w = _Writer()
    w.write(json.dumps(obj, ensure_ascii=False) + "\n")
