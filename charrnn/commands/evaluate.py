"""`charrnn eval`: score a text with one or more checkpoints (nats, bits per char, perplexity)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import typer

from charrnn.commands import handle_errors

HELP = (
    "Score a text with a trained model: mean nats and bits per character, and perplexity.\n\n"
    "One stateful pass: the model starts from the zero state, reads the text in order and "
    "predicts every character from the ones before it (so N - 1 of N characters are scored; "
    "the first is context). Without FILE, each checkpoint is scored on the test split of the "
    "corpus it was trained on, cut exactly as training cut it (the file must still be there, "
    "unchanged). Several checkpoints are ranked by bits per character.\n\n"
    "--per line scores every line on its own, --per doc every document (the lines between "
    "blank lines; with several files or a folder, each file): one row each, in input order, "
    "streamed as the input arrives: line, characters, nats and bits per character and the text "
    "(TSV when stdout is not a terminal, a table on a terminal, one JSON object per row with "
    "--json). Each is scored as itself followed by a newline, from the state after the model "
    "has read a newline, so every row stands alone. With several checkpoints each row has every "
    "model's bits per character and `best`, the model that found it least surprising: "
    "classification by competing language models.\n\n"
    "Examples:\n\n"
    "  charrnn eval                                  # newest run's best, on its test split\n\n"
    "  charrnn eval test.txt -c checkpoints/poems-best.npz\n\n"
    "  charrnn eval test.txt -c a-best.npz -c b-best.npz --json\n\n"
    "  charrnn eval quote.txt --show                 # colour each character by its surprisal\n\n"
    "  charrnn eval --per line mail.txt -c spam.npz -c ham.npz | cut -f1,5   # line, best\n"
)


def command(
    files: list[str] = typer.Argument(
        None,
        metavar="FILE|-",
        help="Text to score; - reads stdin; several files, or a folder, with --per. "
        "\\[default: each checkpoint's own test split]",
        show_default=False,
    ),
    checkpoints: list[Path] = typer.Option(
        None,
        "--checkpoint",
        "-c",
        help="Checkpoint file, or a folder to take its newest run's best from (repeatable). "
        "\\[default: checkpoints/]",
        show_default=False,
    ),
    per: str | None = typer.Option(
        None,
        "--per",
        help="Score each line, or each doc (blank-line separated; one per file with several "
        "files or a folder), on its own: one row each, streamed.",
    ),
    unk: str = typer.Option(
        "error",
        "--unk",
        help="Characters the model never saw (and, with --per, bytes that are not UTF-8): "
        "error, or skip them (counted in `skipped`).",
    ),
    show: bool = typer.Option(
        False,
        "--show",
        help="Print the text coloured by each character's surprisal in bits "
        "(TSV of character and bits when stdout is not a terminal).",
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="One JSON object per checkpoint (per row with --per), one per line (for scripts).",
    ),
    threads: int = typer.Option(0, "--threads", help="Cores to use; 0 = all."),
    streams: int = typer.Option(
        0,
        "--streams",
        help="Segments of the text scored side by side, then checked against the single pass "
        "(the result is the same either way); 0 = 6 per core when the model forgets fast "
        "enough for them to pay (measured); 1 = the single pass only.",
        rich_help_panel="Speed",
    ),
    burn_in: int | None = typer.Option(
        None,
        "--burn-in",
        help="Characters each segment reads before its first score, to guess its state "
        "(default: measured on the text, and segments only when they pay).",
        show_default=False,
        rich_help_panel="Speed",
    ),
    chunk: int = typer.Option(2048, "--chunk", hidden=True),
) -> None:
    try:
        if per is not None:
            from charrnn.commands.eval_per import run_per

            run_per(files or [], checkpoints or [], per, unk, show, json_out, threads, streams,
                    burn_in)  # fmt: skip
            return
        _eval(files or [], checkpoints or [], unk, show, json_out, threads, chunk, streams,
              burn_in)  # fmt: skip
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


command.__doc__ = HELP
command = handle_errors(command)


def _eval(files, paths, unk, show, json_out, threads, chunk, streams, burn_in) -> None:
    from charrnn.errors import UsageError

    if len(files) > 1:
        raise UsageError("several texts: score each file with --per doc, or join them into one")
    file = files[0] if files else None
    if file is not None and file != "-" and Path(file).is_dir():
        raise UsageError(f"{file} is a folder: score each of its files with --per doc")

    if unk not in ("error", "skip"):
        raise UsageError(f"--unk must be error or skip, got {unk!r}")
    if threads < 0:
        raise UsageError(f"--threads must be 0 (all cores) or positive, got {threads}")
    if chunk < 1:
        raise UsageError(f"--chunk must be at least 1, got {chunk}")
    if streams < 0:
        raise UsageError(f"--streams must be 0 (auto) or positive, got {streams}")
    if burn_in is not None and burn_in < 0:
        raise UsageError(f"--burn-in must be 0 or more, got {burn_in}")
    if show and json_out:
        raise UsageError("--show and --json contradict each other: use one")
    if show and len(paths) > 1:
        raise UsageError("--show colours the text for one checkpoint: give a single --checkpoint")

    from charrnn.evaluate import load_models, read_text, score_ids, test_split, to_model_ids
    from charrnn.progress import DelayedBar

    models = load_models(paths, threads)  # all checked before work
    as_bytes = models[0][1].vocab.is_bytes
    shared = read_text(file, as_bytes=as_bytes) if file is not None else None
    results = []
    for path, ckpt, model in models:
        text = shared if shared is not None else test_split(ckpt.meta, str(path))
        ids, skipped = to_model_ids(text, ckpt.vocab, unk)
        label = f"scoring with {path.name}" if len(models) > 1 else "scoring"
        with DelayedBar(label, int(ids.shape[0]) - 1) as progress:
            score = score_ids(
                model,
                ids,
                chunk=chunk,
                threads=threads,
                keep=show,
                progress=progress,
                streams=streams,
                burn_in=burn_in,
            )
        results.append(_record(path, ckpt, text, score, skipped))
        if show:
            _show(ids, ckpt.vocab, score.surprisal, results[-1])
            return
    ranked = sorted(range(len(results)), key=lambda i: _rank_key(results[i]))
    for rank, i in enumerate(ranked, 1):
        results[i]["rank"] = rank
    if json_out:
        for r in results:
            sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        _table([results[i] for i in ranked])


def _rank_key(r: dict) -> float:
    return math.inf if r["bits_per_char"] is None else r["bits_per_char"]


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _record(path, ckpt, text, score, skipped) -> dict:
    return {
        "checkpoint": str(path),
        "name": ckpt.name,
        "step": ckpt.meta.get("step"),
        "text": text.label,
        "split": text.split,
        "sha256": (text.corpus or {}).get("sha256"),
        "vocab_kind": ckpt.vocab.kind,  # bytes: chars and the figures count bytes
        "chars": score.chars,
        "skipped": skipped,
        "nats_per_char": _finite(score.nats_per_char),
        "bits_per_char": _finite(score.bits_per_char),
        "perplexity": _finite(score.perplexity),
        "seconds": round(score.seconds, 4),
        "chars_per_second": _finite(round(score.chars_per_second, 1)),
        "streams": score.streams,
        "burn_in": score.burn_in,
        "recomputed": score.recomputed,
        "state_gap": score.state_gap,
        "measured": score.measured,
    }


def _fmt(x, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def _table(rows: list[dict]) -> None:
    import os

    from rich.console import Console
    from rich.table import Table

    skipped = any(r["skipped"] for r in rows)
    table = Table(show_edge=False)
    from charrnn.vocab import unit as vocab_unit

    unit = vocab_unit(rows[0]["vocab_kind"])  # one kind per run
    columns = ["#", "checkpoint", "text", f"{unit}s", f"bits/{unit}", f"nats/{unit}", "perplexity"]
    columns += ["skipped"] * skipped + [f"{unit}s/s"]
    for name in columns:
        if name in ("checkpoint", "text"):  # paths wrap in their cell rather than lose their end
            table.add_column(name, overflow="fold")
        else:
            table.add_column(name, justify="right")
    for r in rows:
        cells = [
            str(r["rank"]),
            r["checkpoint"],
            r["text"],
            f"{r['chars']:,}",
            _fmt(r["bits_per_char"], ".4f"),
            _fmt(r["nats_per_char"], ".4f"),
            _fmt(r["perplexity"], ".3f"),
        ]
        cells += [f"{r['skipped']:,}"] * skipped + [_fmt(r["chars_per_second"], ",.0f")]
        table.add_row(*cells)
    # a pipe or a file gets whole lines, not a table squeezed into 80 columns
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    Console(width=200 if wide else None).print(table)


# --------------------------------------------------------------------------------- --show

SCALE_BITS = 8.0  # surprisal at which the colour scale tops out


def _colour(bits: float) -> str:
    """Green (0 bits) through yellow to red (SCALE_BITS and more), as a Rich colour."""
    f = min(max(bits / SCALE_BITS, 0.0), 1.0)
    if f < 0.5:
        r, g = int(510 * f), 200
    else:
        r, g = 255, int(200 * (2 - 2 * f))
    return f"rgb({r},{g},60)"


def _show(ids, vocab, surprisal, record) -> None:
    import numpy as np

    from charrnn.vocab import escape

    chars = vocab.chars
    bits = surprisal / math.log(2.0)  # (N-1,)
    if not sys.stdout.isatty():
        out = sys.stdout
        out.write("char\tbits\n")
        ids = np.asarray(ids)
        out.write(f"{escape(chars[int(ids[0])])}\t\n")
        for i, b in zip(ids[1:].tolist(), bits.tolist(), strict=True):
            out.write(f"{escape(chars[i])}\t{b:.6f}\n")
        out.flush()
        return
    from rich.console import Console
    from rich.text import Text

    text = Text()
    text.append(chars[int(ids[0])], style="dim")
    for i, b in zip(np.asarray(ids[1:]).tolist(), bits.tolist(), strict=True):
        ch = chars[i]
        text.append(ch, style=None if ch == "\n" else f"black on {_colour(b)}")
    legend = Text("\nsurprisal, bits per character: ")
    for b in range(int(SCALE_BITS) + 1):
        label = f" {b}+ " if b == int(SCALE_BITS) else f" {b} "
        legend.append(label, style=f"black on {_colour(b)}")
    legend.append(
        f"   mean {_fmt(record['bits_per_char'], '.4f')} bits/char over "
        f"{record['chars']:,} characters (the first, dim, is context)"
    )
    Console(soft_wrap=True).print(text, end="")  # the text as it is: the terminal wraps it
    Console().print(legend)  # wrapped between words
