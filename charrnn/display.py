"""What the user sees while training: consumers of `train.Event`s, all writing to stderr.

- `Dashboard`: a Rich live view on a terminal (loss and bpc, a loss curve, lr, gradient norm,
  chars/s, elapsed and ETA, a progress bar, and a sample refreshed at every eval).
- `PlainLog`: one line per evaluation, for pipes, files and `--quiet`.
- `JsonlLog`: one JSON record per evaluation (`--log-jsonl FILE`).
`chart` draws a small line chart in text; `inspect` uses it too.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import IO, Any

from charrnn.train import Event, format_duration

LN2 = math.log(2.0)


def bpc(nats: float | None) -> float:
    return float("nan") if nats is None else nats / LN2


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, spec)


def rate(chars_per_second: float | None) -> str:
    """chars/s for people: — until there is one (the first step, compiling, is not timed)."""
    x = chars_per_second
    return "—" if x is None or not math.isfinite(x) or x <= 0 else f"{x:,.0f}"


def chart(series: dict[str, list[float | None]], width: int = 60, height: int = 8) -> list[str]:
    """A text line chart: one row of characters per level, one column per bucket of points.

    Each series gets its own marker (first letter of its name); where series share a cell the
    later one wins. The y axis is labelled with the min and max. Returns the lines."""
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    if not values:
        return ["(no data yet)"]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    grid = [[" "] * width for _ in range(height)]
    for name, points in series.items():
        marker = name[0]
        pts = [p for p in points]
        if not pts:
            continue
        for col in range(width):
            a = col * len(pts) // width
            b = max(a + 1, (col + 1) * len(pts) // width)
            bucket = [p for p in pts[a:b] if p is not None and math.isfinite(p)]
            if not bucket or a >= len(pts):
                continue
            v = sum(bucket) / len(bucket)
            row = height - 1 - int(round((v - lo) / span * (height - 1)))
            grid[row][col] = marker
    label_w = max(len(f"{hi:.3f}"), len(f"{lo:.3f}"))
    lines = []
    for i, row in enumerate(grid):
        label = f"{hi:.3f}" if i == 0 else f"{lo:.3f}" if i == height - 1 else ""
        lines.append(f"{label:>{label_w}} │{''.join(row)}")
    lines.append(" " * label_w + " └" + "─" * width)
    legend = "  ".join(f"{n[0]} = {n}" for n in series)
    lines.append(" " * (label_w + 2) + legend)
    return lines


class PlainLog:
    """One line per evaluation (and every warning) on stderr."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total_steps: int | None = None

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def __call__(self, e: Event) -> None:
        d = e.data
        if e.kind == "start":
            self.total_steps = d.get("total_steps")
        elif e.kind == "eval":
            total = f"/{self.total_steps}" if self.total_steps else ""
            self._write(
                f"step {e.step}{total}  epoch {d['epoch']:.2f}  train {_fmt(d['train_loss'])}  "
                f"val {_fmt(d['val_loss'])} ({_fmt(bpc(d['val_loss']), '.3f')} bpc)"
                f"{' *' if d['improved'] else ''}  lr {d['lr']:.2e}  "
                f"{rate(d['chars_per_second'])} chars/s  {format_duration(d['elapsed'])}"
            )
        elif e.kind == "warning":
            self._write(f"warning: {d['message']}")


class JsonlLog:
    """One JSON object per evaluation, appended to a file and flushed."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, e: Event) -> None:
        if e.kind != "eval":
            return
        d = e.data
        record = {
            "step": e.step,
            "epoch": d["epoch"],
            "train_loss": _finite(d["train_loss"]),
            "val_loss": _finite(d["val_loss"]),
            "val_bpc": _finite(bpc(d["val_loss"])),
            "best_val_loss": _finite(d["best_val_loss"]),
            "lr": d["lr"],
            "chars_per_second": d["chars_per_second"],
            "elapsed": d["elapsed"],
            "time": time.time(),
        }
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


HISTORY = 4000  # chart points kept by the dashboard


def _merge_pairs(points: list[float | None], mean: bool) -> list[float | None]:
    """Half as many points: each pair's mean (mean=True) or its last value that is not None."""
    out: list[float | None] = []
    for i in range(0, len(points), 2):
        pair = [p for p in points[i : i + 2] if p is not None]
        out.append((sum(pair) / len(pair) if mean else pair[-1]) if pair else None)
    return out


WAIT_NOTICE = 1.0  # seconds without a first step before the dashboard says why
COMPILING = "compiling the kernels for the first step: about 15 s on a first run, cached after that"


class Dashboard:
    """The live view. Use as a context manager; call it with events."""

    def __init__(self, title: str, stop_seconds: float | None = None) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.title = title
        self.stop_seconds = stop_seconds
        self.total_steps: int | None = None
        self.first_step = 0
        self.step = 0
        self.started = time.perf_counter()
        self.last: dict[str, Any] = {}
        # the chart: one point per step (pairs merged when it grows past HISTORY), val loss at
        # the point of its evaluation, None elsewhere
        self.train_hist: list[float | None] = []
        self.val_hist: list[float | None] = []
        self.sample = ""
        self.best: float | None = None
        self._live = None

    def __enter__(self) -> Dashboard:
        from rich.live import Live

        self._live = Live(
            get_renderable=self.render,
            console=self.console,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def __call__(self, e: Event) -> None:
        d = e.data
        self.step = e.step
        if e.kind == "start":
            self.total_steps = d.get("total_steps")
            self.first_step = e.step
            self.started = time.perf_counter()
        elif e.kind == "step":
            self.last.update(d)
            self.train_hist.append(d["loss"])
            self.val_hist.append(None)
            if len(self.train_hist) > HISTORY:
                self.train_hist = _merge_pairs(self.train_hist, mean=True)
                self.val_hist = _merge_pairs(self.val_hist, mean=False)
        elif e.kind == "eval":
            if not self.val_hist:  # an evaluation before any step (a resumed run starts so)
                self.train_hist.append(d["train_loss"])
                self.val_hist.append(None)
            self.val_hist[-1] = d["val_loss"]
            self.best = d["best_val_loss"]
            self.last["val_loss"] = d["val_loss"]
            if d.get("sample"):
                self.sample = d["sample"]
        elif e.kind == "warning":
            self.console.print(f"[yellow]warning:[/] {d['message']}")

    def _progress(self) -> tuple[float | None, float | None]:
        """(fraction done, seconds left) from the step budget and the time budget."""
        elapsed = time.perf_counter() - self.started
        fractions, etas = [], []
        done_steps = self.step - self.first_step
        if self.total_steps:
            left = max(0, self.total_steps - self.step)
            fractions.append(min(1.0, self.step / self.total_steps))
            if done_steps > 0:
                etas.append(left * elapsed / done_steps)
        if self.stop_seconds:
            fractions.append(min(1.0, elapsed / self.stop_seconds))
            etas.append(max(0.0, self.stop_seconds - elapsed))
        if not fractions:
            return None, None
        return max(fractions), min(etas) if etas else None

    def render(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        d = self.last
        loss = d.get("loss")
        val = d.get("val_loss")
        elapsed = time.perf_counter() - self.started
        frac, eta = self._progress()
        stats = Table.grid(padding=(0, 2))
        for _ in range(4):
            stats.add_column()
        total = f" / {self.total_steps:,}" if self.total_steps else ""
        stats.add_row(
            "step",
            f"{self.step:,}{total}",
            "epoch",
            _fmt(d.get("epoch"), ".2f"),
        )
        stats.add_row(
            "train loss",
            f"{_fmt(loss)} ({_fmt(bpc(loss), '.3f')} bpc)",
            "val loss",
            f"{_fmt(val)} ({_fmt(bpc(val), '.3f')} bpc)",
        )
        stats.add_row(
            "best val",
            f"{_fmt(self.best)} ({_fmt(bpc(self.best), '.3f')} bpc)",
            "lr",
            _fmt(d.get("lr"), ".2e"),
        )
        stats.add_row(
            "grad norm",
            _fmt(d.get("grad_norm"), ".3f"),
            "chars/s",
            rate(d.get("chars_per_second")),
        )
        stats.add_row(
            "elapsed",
            format_duration(elapsed),
            "ETA",
            "—" if eta is None else format_duration(eta),
        )
        parts: list[Any] = [stats]
        if "loss" not in d and elapsed > WAIT_NOTICE:
            parts.append(Text(COMPILING, style="dim"))
        if frac is not None:
            bar = Table.grid(padding=(0, 1))
            bar.add_row(ProgressBar(total=1.0, completed=frac, width=50), f"{frac:6.1%}")
            parts.append(bar)
        if len(self.train_hist) > 1:
            lines = chart({"train": self.train_hist, "val": self.val_hist}, width=50, height=6)
            parts.append(Text("\n".join(lines)))
        if self.sample:
            parts.append(Panel(Text(self.sample), title="sample", title_align="left"))
        return Panel(Group(*parts), title=self.title, title_align="left")
