"""Looking inside a checkpoint: what it holds (`summarize`), and what its hidden units do over a
text (`unit_activations`, `unit_stats`).

Activations: the model starts from the zero state and reads the text once, in chunks with the
state carried; the activation of a unit at character t is its layer's output h_t after reading
characters 1..t (every character gets one, the first included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from charrnn import cells
from charrnn.vocab import escape
from charrnn.vocab import unit as vocab_unit

DEFAULT_CHUNK = 2048  # T: steps per forward call
CORPUS_EXTRAS = ("encoding", "files", "list_sha256", "glob", "skipped", "skipped_files")


# --------------------------------------------------------------------------------- summary


def _num(x: Any) -> float | None:
    """A finite number from meta, else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def summarize(ckpt, path) -> dict[str, Any]:
    """Everything `charrnn inspect` shows, as one JSON-able dict (None where the checkpoint does
    not say)."""
    meta = ckpt.meta
    cell = cells.get(ckpt.config)
    tensors = [
        {
            "name": name,
            "shape": list(a.shape),
            "params": int(a.size),
            "dtype": str(a.dtype),
        }
        for name, a in ckpt.params.items()
    ]
    train_cfg = meta.get("train_config") if isinstance(meta.get("train_config"), dict) else {}
    corpus = meta.get("corpus") if isinstance(meta.get("corpus"), dict) else {}
    history = meta.get("history") if isinstance(meta.get("history"), dict) else {}
    best = _num(meta.get("best_val_loss"))
    lr = _num(meta.get("lr"))
    return {
        "path": str(path),
        "name": ckpt.name,
        "kind": meta.get("kind"),
        "format_version": meta.get("format_version"),
        "charrnn_version": meta.get("charrnn_version"),
        "model": ckpt.config.to_dict(),
        "features": cell.features(),  # the cell's options, in words
        "torch_module": cell.torch_module and f"torch.nn.{cell.torch_module}",  # or None
        "tensors": tensors,
        "total_params": sum(t["params"] for t in tensors),
        "vocab": {
            "kind": ckpt.vocab.kind,  # chars, or bytes: the 256 byte values
            "size": len(ckpt.vocab),
            "symbols": [escape(c) for c in ckpt.vocab.chars] if not ckpt.vocab.is_bytes else [],
        },
        "step": meta.get("step"),
        "epoch": _num(meta.get("epoch")),
        "optimizer": meta.get("optimizer") or train_cfg.get("optimizer"),
        "lr": lr,
        "train_config": train_cfg or None,
        "corpus": {
            "name": corpus.get("name"),
            "chars": corpus.get("chars"),
            "bytes": corpus.get("bytes"),
            "sha256": corpus.get("sha256"),
            "sources": corpus.get("sources"),
            # when the checkpoint says: the encoding ("bytes": a byte model), the file list
            # (charrnn/sources.py: count, digest, glob) and the files left out
            **{k: corpus[k] for k in CORPUS_EXTRAS if k in corpus},
        },
        "sizing": meta.get("sizing") if isinstance(meta.get("sizing"), dict) else None,
        "best_val_loss": best,
        "best_val_bpc": None if best is None else best / math.log(2.0),
        "best_step": meta.get("best_step"),
        "elapsed_seconds": _num(meta.get("elapsed_seconds")),
        "chars_seen": meta.get("chars_seen"),
        "chars_per_second": _num(meta.get("chars_per_second")),
        "history": {
            k: list(history.get(k) or [])
            for k in ("step", "epoch", "train_loss", "val_loss", "lr", "elapsed")
        },
        "nonfinite_tensors": ckpt.has_nonfinite(),
    }


def render_summary(info: dict[str, Any], width: int = 60) -> list:
    """Rich renderables for a summary, top to bottom."""
    from rich.table import Table
    from rich.text import Text

    from charrnn.display import chart, rate
    from charrnn.train import format_duration

    def fmt(x, spec=",") -> str:
        return "—" if x is None else format(x, spec)

    out: list = []
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")  # never an ellipsis: every symbol is shown
    title = info["name"] or "(unnamed)"
    head.add_row("checkpoint", f"{info['path']}  [{title}, {info['kind'] or '?'}]")
    head.add_row(
        "format", f"{fmt(info['format_version'], '')}  (charrnn {info['charrnn_version'] or '?'})"
    )
    m = info["model"]
    arch = f"{m['cell']}  {m['layers']} x {m['hidden']}"
    arch += f"  embed {m['embed']}" if m["embed"] else "  one-hot input"
    arch += f"  dropout {m['dropout']:g}"
    if m["dropout"] and not m.get("output_dropout", True):
        arch += " (between layers only)"
    if m.get("weight_drop"):
        arch += f"  weight drop {m['weight_drop']:g}"
    arch += "".join(f"  {f}" for f in info["features"])
    head.add_row("model", arch)
    twin = info["torch_module"]
    head.add_row("pytorch", twin or "no torch.nn module has this cell (the file reads with numpy)")
    sizing = info.get("sizing")
    if sizing and isinstance(sizing.get("reason"), str):
        head.add_row("chosen", sizing["reason"])
    if info["vocab"]["kind"] == "bytes":
        head.add_row("vocabulary", "the 256 byte values (a byte model: --bytes)")
    else:
        head.add_row(
            "vocabulary",
            f"{info['vocab']['size']} symbols: " + " ".join(info["vocab"]["symbols"]),
        )
    if info["nonfinite_tensors"]:
        head.add_row("[red]warning[/]", "NaN/inf in " + ", ".join(info["nonfinite_tensors"]))
    out.append(head)

    tensors = Table(title="tensors", title_justify="left", show_edge=False)
    tensors.add_column("name")
    tensors.add_column("shape")
    tensors.add_column("params", justify="right")
    tensors.add_column("dtype")
    for t in info["tensors"]:
        tensors.add_row(t["name"], "×".join(map(str, t["shape"])), f"{t['params']:,}", t["dtype"])
    tensors.add_row("[bold]total", "", f"[bold]{info['total_params']:,}", "")
    out.append(tensors)

    train = Table.grid(padding=(0, 2))
    train.add_column(style="bold")
    train.add_column(overflow="fold")
    epoch = info["epoch"]
    train.add_row(
        "step", f"{fmt(info['step'])}  (epoch {'—' if epoch is None else f'{epoch:.2f}'})"
    )
    lr = "—" if info["lr"] is None else f"{info['lr']:.3g}"
    train.add_row("optimizer", f"{info['optimizer'] or '—'}  lr {lr}")
    c = info["corpus"]
    corpus = f"{c['name'] or '—'}  {fmt(c['chars'])} chars  {fmt(c['bytes'])} bytes"
    train.add_row("corpus", corpus)
    train.add_row("sha256", c["sha256"] or "—")
    if c.get("files") is not None:
        globs = "  glob " + " ".join(c["glob"]) if c.get("glob") else ""
        train.add_row("files", f"{c['files']:,}  list sha256 {c.get('list_sha256')}{globs}")
    if c.get("skipped"):
        kinds = ", ".join(f"{n} {r}" for r, n in c["skipped"].items())
        listed = c.get("skipped_files") or []
        more = sum(c["skipped"].values()) - len(listed)
        tail = f"\n... and {more} more" if more > 0 else ""
        train.add_row("skipped", f"{kinds}:\n" + "\n".join(listed) + tail)
    best = info["best_val_loss"]
    unit = vocab_unit(info["vocab"]["kind"])
    if best is not None:
        train.add_row(
            "best val",
            f"{best:.4f} nats/{unit}  {info['best_val_bpc']:.4f} bits/{unit}  "
            f"(step {fmt(info['best_step'])})",
        )
    else:
        train.add_row("best val", "—")
    secs = info["elapsed_seconds"]
    speed = info["chars_per_second"]
    train.add_row(
        "training",
        f"{'—' if secs is None else format_duration(secs)}  {rate(speed)} chars/s",
    )
    out.append(train)

    h = info["history"]
    if h["val_loss"] or h["train_loss"]:
        lines = chart({"train": h["train_loss"], "val": h["val_loss"]}, width=width, height=8)
        steps = [s for s in h["step"] if s is not None]
        span = f"  (steps {steps[0]:,}..{steps[-1]:,})" if steps else ""
        out.append(Text(f"loss history, nats/{unit}" + span))
        out.append(Text("\n".join(lines)))
    else:
        out.append(Text("loss history: none recorded"))
    return out


# --------------------------------------------------------------------------------- activations


def _chunks(ids: np.ndarray, chunk: int):
    n = int(ids.shape[0])
    for start in range(0, n, chunk):
        yield start, np.ascontiguousarray(ids[start : start + chunk], dtype=np.int32)[None]


def unit_activations(
    model, ids: np.ndarray, layer: int, unit: int, chunk: int = DEFAULT_CHUNK
) -> np.ndarray:
    """(N,) activation of hidden `unit` of `layer` after each of the N characters of ids."""
    n = int(ids.shape[0])
    out = np.empty(n, model.dtype)
    state = model.zero_state(1)
    for start, x in _chunks(ids, chunk):
        res = model.forward(x, state, return_hidden=True)
        state = res.state
        out[start : start + x.shape[1]] = res.hidden[layer][0, :, unit]
    return out


@dataclass
class UnitStats:
    """Per-unit statistics of one layer's activations over a text; each array (R,)."""

    count: int
    mean: np.ndarray
    std: np.ndarray  # population standard deviation
    min: np.ndarray
    max: np.ndarray

    def top(self, n: int) -> list[int]:
        """The n units that vary most (largest std first; ties: lower unit first)."""
        order = sorted(range(self.std.size), key=lambda j: (-float(self.std[j]), j))
        return order[:n]


def unit_stats(model, ids: np.ndarray, layer: int, chunk: int = DEFAULT_CHUNK) -> UnitStats:
    """Mean, std, min and max of every unit of `layer` over the text, in one streaming pass
    (chunk statistics merged with Chan's formula, float64)."""
    H = model.config.output_size
    count = 0
    mean = np.zeros(H)
    m2 = np.zeros(H)
    lo = np.full(H, np.inf)
    hi = np.full(H, -np.inf)
    state = model.zero_state(1)
    for _, x in _chunks(ids, chunk):
        res = model.forward(x, state, return_hidden=True)
        state = res.state
        a = res.hidden[layer][0].astype(np.float64)  # (t, R)
        t = a.shape[0]
        cm = a.mean(axis=0)
        cm2 = ((a - cm) ** 2).sum(axis=0)
        delta = cm - mean
        total = count + t
        mean = mean + delta * (t / total)
        m2 = m2 + cm2 + delta**2 * (count * t / total)
        count = total
        lo = np.minimum(lo, a.min(axis=0))
        hi = np.maximum(hi, a.max(axis=0))
    std = np.sqrt(m2 / max(count, 1))
    return UnitStats(count, mean, std, lo, hi)
