"""`charrnn inspect`: what a checkpoint holds, and what its hidden units do over a text."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from charrnn.commands import handle_errors

HELP = (
    "Show what a checkpoint holds: format, model, every tensor with its parameter count, the "
    "vocabulary, training position, optimizer and learning rate, corpus fingerprint, best "
    "validation loss, training speed and the loss history as a chart.\n\n"
    "With --text, look at hidden units instead: --neuron K colours the text by unit K's "
    "activation after each character (TSV of character and activation when stdout is not a "
    "terminal); --top-neurons N lists the N units whose activation varies most over the text "
    "(standard deviation), a way to find the unit that tracks quotes or line length.\n\n"
    "Examples:\n\n"
    "  charrnn inspect checkpoints/poems-best.npz\n\n"
    "  charrnn inspect checkpoints/poems-best.npz --json | jq .total_params\n\n"
    "  charrnn inspect poems-best.npz --top-neurons 10 --text sonnet.txt\n\n"
    "  charrnn inspect poems-best.npz --neuron 42 --layer 1 --text sonnet.txt\n"
)


def command(
    checkpoint: Path | None = typer.Argument(
        None,
        metavar="CKPT",
        help="Checkpoint file, or a folder to take its newest run's best from. "
        "\\[default: checkpoints/]",
        show_default=False,
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (for scripts)."),
    neuron: int | None = typer.Option(
        None, "--neuron", help="Colour --text by this hidden unit's activation (0-based)."
    ),
    layer: int | None = typer.Option(
        None, "--layer", help="Layer of the units (0-based). \\[default: the last]"
    ),
    top_neurons: int | None = typer.Option(
        None, "--top-neurons", help="List the N units whose activation varies most over --text."
    ),
    text: str | None = typer.Option(
        None, "--text", help="Text file for --neuron / --top-neurons; - reads stdin."
    ),
    unk: str = typer.Option(
        "error", "--unk", help="Characters of --text the model never saw: error, or skip them."
    ),
) -> None:
    _inspect(checkpoint, json_out, neuron, layer, top_neurons, text, unk)


command.__doc__ = HELP
command = handle_errors(command)


def _inspect(path, json_out, neuron, layer, top_neurons, text, unk) -> None:
    from charrnn.errors import UsageError

    units = neuron is not None or top_neurons is not None
    if neuron is not None and top_neurons is not None:
        raise UsageError("--neuron and --top-neurons contradict each other: use one")
    if units and text is None:
        raise UsageError("--neuron and --top-neurons need --text FILE (the text to run)")
    if not units and (text is not None or layer is not None):
        raise UsageError("--text and --layer go with --neuron K or --top-neurons N")
    if top_neurons is not None and top_neurons < 1:
        raise UsageError(f"--top-neurons must be at least 1, got {top_neurons}")
    if unk not in ("error", "skip"):
        raise UsageError(f"--unk must be error or skip, got {unk!r}")

    from charrnn.checkpoint import load, resolve_checkpoint

    path = resolve_checkpoint(path)
    if not units:
        ckpt = load(path)
        _summary(ckpt, path, json_out)
        return

    from charrnn.evaluate import load_model, read_text, to_model_ids

    ckpt, model = load_model(path, threads=1)
    cfg = ckpt.config
    if layer is None:
        layer = cfg.layers - 1
    if not 0 <= layer < cfg.layers:
        raise UsageError(f"--layer must be in 0..{cfg.layers - 1} (the model has {cfg.layers})")
    units = cfg.output_size  # a layer's outputs: its hidden units, or its projection's
    if neuron is not None and not 0 <= neuron < units:
        raise UsageError(f"--neuron must be in 0..{units - 1} (a layer has {units} outputs)")
    ids, _ = to_model_ids(read_text(text), ckpt.vocab, unk)
    if neuron is not None:
        _neuron(model, ckpt.vocab, ids, path, layer, neuron, json_out)
    else:
        _top(model, ids, path, layer, min(top_neurons, units), json_out)


def _summary(ckpt, path, json_out) -> None:
    from charrnn.inspection import render_summary, summarize

    info = summarize(ckpt, path)
    if json_out:
        sys.stdout.write(json.dumps(info, ensure_ascii=False) + "\n")
        return
    from rich.console import Console

    console = Console(soft_wrap=True)
    for part in render_summary(info):
        console.print(part)
        console.print()


def _neuron(model, vocab, ids, path, layer, unit, json_out) -> None:
    import numpy as np

    from charrnn.inspection import unit_activations
    from charrnn.vocab import escape

    acts = unit_activations(model, ids, layer, unit)  # (N,)
    chars = vocab.chars
    ids = np.asarray(ids).tolist()
    if json_out:
        obj = {
            "checkpoint": str(path),
            "layer": layer,
            "neuron": unit,
            "chars": [chars[i] for i in ids],
            "activations": [float(a) for a in acts.tolist()],
        }
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        return
    if not sys.stdout.isatty():
        out = sys.stdout
        out.write("char\tactivation\n")
        for i, a in zip(ids, acts.tolist(), strict=True):
            out.write(f"{escape(chars[i])}\t{a:.9g}\n")
        out.flush()
        return
    from rich.console import Console
    from rich.text import Text

    shown = Text()
    for i, a in zip(ids, acts.tolist(), strict=True):
        ch = chars[i]
        shown.append(ch, style=None if ch == "\n" else f"black on {_diverging(a)}")
    legend = Text(f"\nlayer {layer}, unit {unit}, activation: ")
    for v in (-1.0, -0.5, 0.0, 0.5, 1.0):
        legend.append(f" {v:+.1f} ", style=f"black on {_diverging(v)}")
    console = Console(soft_wrap=True)
    console.print(shown, end="")
    console.print(legend)


def _diverging(a: float) -> str:
    """Blue (-1) through white (0) to red (+1), as a Rich colour; clipped outside [-1, 1]."""
    f = min(max(a, -1.0), 1.0)
    if f < 0:
        k = int(255 * (1 + f))
        return f"rgb({k},{k},255)"
    k = int(255 * (1 - f))
    return f"rgb(255,{k},{k})"


def _top(model, ids, path, layer, n, json_out) -> None:
    from charrnn.inspection import unit_stats

    stats = unit_stats(model, ids, layer)
    top = stats.top(n)
    rows = [
        {
            "unit": j,
            "std": float(stats.std[j]),
            "mean": float(stats.mean[j]),
            "min": float(stats.min[j]),
            "max": float(stats.max[j]),
        }
        for j in top
    ]
    if json_out:
        obj = {"checkpoint": str(path), "layer": layer, "chars": stats.count, "neurons": rows}
        sys.stdout.write(json.dumps(obj) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"layer {layer}: the {n} units that vary most over {stats.count:,} characters",
        title_justify="left",
        caption="see one with --neuron UNIT",
        caption_justify="left",
        show_edge=False,
    )
    for name in ("#", "unit", "std", "mean", "min", "max"):
        table.add_column(name, justify="right")
    for rank, r in enumerate(rows, 1):
        table.add_row(
            str(rank),
            str(r["unit"]),
            f"{r['std']:.4f}",
            f"{r['mean']:+.4f}",
            f"{r['min']:+.4f}",
            f"{r['max']:+.4f}",
        )
    Console(soft_wrap=True).print(table)
