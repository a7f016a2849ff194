"""`charrnn eval --per line|doc`: one row per line or document, streamed as TSV, a table or JSON.

Columns: `file` (with several files), `line` (where the unit starts), `chars` (its characters,
the closing newline included), `skipped` (with --unk skip), then for one model `nats_per_char`
and `bits_per_char`, for several one bits/char column per model headed by its name (and
`skipped:NAME`) and `best`, the model with the lowest bits/char; last `text` (none for a whole
file as a document). A byte model counts bytes (chars, and the figures per byte; the table
says so). TSV escapes backslash, tab, newline and carriage return in the text as
\\\\, \\t, \\n and \\r.
"""

from __future__ import annotations

import json
import math
import sys

from charrnn.errors import UsageError

LN2 = math.log(2.0)


def run_per(files, paths, per, unk, show, json_out, threads, streams, burn_in) -> None:
    from charrnn.evaluate import DEFAULT_BURN_IN, load_models
    from charrnn.perline import UnitScorer, score_stream
    from charrnn.progress import DelayedBar
    from charrnn.units import PERS, read_units, total_bytes

    if per not in PERS:
        raise UsageError(f"--per must be line or doc, got {per!r}")
    if unk not in ("error", "skip"):
        raise UsageError(f"--unk must be error or skip, got {unk!r}")
    if threads < 0:
        raise UsageError(f"--threads must be 0 (all cores) or positive, got {threads}")
    if show:
        raise UsageError("--show colours one whole text: leave out --per")
    if streams != 0 or burn_in != DEFAULT_BURN_IN:
        raise UsageError("--streams and --burn-in tune whole-text scoring: leave them out of --per")
    if not files:
        raise UsageError("--per needs the text to score: give FILE (or - for stdin)")
    models = load_models(paths, threads)
    sources = _files(list(files), models[0][1].vocab.is_bytes, unk)
    names = model_names([(path, ckpt) for path, ckpt, _ in models])
    scorer = UnitScorer(
        [
            (model.copy(threads, frozen=True), ckpt.vocab, name)
            for (_, ckpt, model), name in zip(models, names, strict=True)
        ],
        unk,
    )
    layout = Layout(
        names,
        files=len(sources) > 1,
        skipped=unk == "skip",
        text=not (per == "doc" and len(sources) > 1),
        bytes=models[0][1].vocab.is_bytes,
    )
    if json_out:
        writer = JsonWriter(layout)
    elif sys.stdout.isatty():
        writer = TableWriter(layout)
    else:
        writer = TsvWriter(layout)
    units = read_units(sources, per, strip_bom=not models[0][1].vocab.is_bytes)
    # rows on a terminal show the progress themselves; the bar is for output going elsewhere
    total = total_bytes(sources)  # None: a pipe, whose lines are scored as they come
    bar = DelayedBar("scoring", total, "bytes", enabled=_bar_wanted())
    with bar:
        writer.start()
        for rows in score_stream(scorer, units, bar, full=total is not None):
            for row in rows:
                writer.row(row)
            sys.stdout.flush()


def _files(args: list[str], as_bytes: bool, unk: str) -> list[str]:
    """The files to read: a folder stands for its files, as for `charrnn train` (binary,
    special and unreadable ones skipped with a warning; undecodable ones too unless --unk skip,
    which scores them without their bad bytes); every source checked before any row."""
    import os

    import typer

    from charrnn.sources import expand
    from charrnn.units import check_sources

    if any(a != "-" and os.path.isdir(a) for a in args):
        encoding, errors = ("latin-1", "strict") if as_bytes else ("utf-8", "strict")
        if unk == "skip":
            errors = "replace"
        found = expand(args, None, encoding, errors, as_bytes=as_bytes)
        for line in found.warnings():
            typer.echo(f"charrnn: warning: {line}", err=True)
        args = found.files
    return check_sources(args)


def _bar_wanted() -> bool:
    return sys.stderr.isatty() and not sys.stdout.isatty()


def model_names(loaded: list[tuple]) -> list[str]:
    """A short, distinct name per model: its run name, else its file's stem; where two would
    be the same, the paths as given."""
    names = [ckpt.name or path.stem for path, ckpt in loaded]
    if len(set(names)) < len(names):
        names = [str(path) for path, _ in loaded]
    if len(set(names)) < len(names):
        raise UsageError("the same checkpoint is given twice: give each once")
    return names


class Layout:
    """Which columns the rows have, and each row's values."""

    def __init__(
        self, names: list[str], *, files: bool, skipped: bool, text: bool, bytes: bool = False
    ) -> None:
        self.names, self.files, self.skipped, self.text = names, files, skipped, text
        self.bytes = bytes  # byte models: chars and the figures count bytes

    @property
    def several(self) -> bool:
        return len(self.names) > 1

    def header(self) -> list[str]:
        cols = ["file"] * self.files + ["line", "chars"]
        if not self.several:
            cols += ["skipped"] * self.skipped + ["nats_per_char", "bits_per_char"]
        else:
            cols += [f"skipped:{n}" for n in self.names] * self.skipped + list(self.names)
            cols += ["best"]
        return cols + ["text"] * self.text

    def record(self, row) -> dict:
        """The row as JSON: every key always there (text only when the unit has one)."""
        u = row.unit
        out = {"file": u.source, "line": u.line, "chars": row.chars}
        scores = {
            name: {
                "nats_per_char": s.nats_per_char,
                "bits_per_char": s.bits_per_char,
                "skipped": s.skipped,
            }
            for name, s in zip(self.names, row.scores, strict=True)
        }
        if self.several:
            out["scores"] = scores
            out["best"] = self.names[row.best()]
        else:
            out.update(scores[self.names[0]])
        if self.text:
            out["text"] = u.raw.decode("utf-8", "replace")
        return out

    def cells(self, row, number: str = ".6f") -> list[str]:
        u = row.unit
        cells = [u.source] * self.files + [str(u.line), str(row.chars)]
        if not self.several:
            s = row.scores[0]
            cells += [str(s.skipped)] * self.skipped
            cells += [format(s.nats_per_char, number), format(s.bits_per_char, number)]
        else:
            cells += [str(s.skipped) for s in row.scores] * self.skipped
            cells += [format(s.bits_per_char, number) for s in row.scores]
            cells += [self.names[row.best()]]
        return cells


def tsv_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class TsvWriter:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def start(self) -> None:
        sys.stdout.write("\t".join(tsv_escape(c) for c in self.layout.header()) + "\n")

    def row(self, row) -> None:
        cells = [tsv_escape(c) for c in self.layout.cells(row)]
        if self.layout.text:
            cells.append(tsv_escape(row.unit.raw.decode("utf-8", "replace")))
        sys.stdout.write("\t".join(cells) + "\n")


class JsonWriter:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def start(self) -> None:
        pass

    def row(self, row) -> None:
        sys.stdout.write(json.dumps(self.layout.record(row), ensure_ascii=False) + "\n")


class TableWriter:
    """Fixed-width columns, streamed: numbers right-aligned, the text cut to the terminal."""

    def __init__(self, layout: Layout) -> None:
        import shutil

        self.layout = layout
        self.width = shutil.get_terminal_size((100, 24)).columns
        unit = "byte" if layout.bytes else "char"
        names = {
            "nats_per_char": f"nats/{unit}",
            "bits_per_char": f"bits/{unit}",
            "chars": f"{unit}s",
        }
        self.header = [names.get(h, h) for h in layout.header() if h != "text"]
        self.widths = [max(len(h), 9) for h in self.header]
        if layout.files:
            self.widths[0] = 16

    def _line(self, cells: list[str], text: str | None) -> str:
        from rich.cells import cell_len, set_cell_size

        parts = []
        for name, cell, width in zip(self.header, cells, self.widths, strict=True):
            if name == "file":
                cell = cell if cell_len(cell) <= width else "…" + cell[-(width - 1) :]
                parts.append(set_cell_size(cell, width))
            else:
                parts.append(cell.ljust(width) if name == "best" else cell.rjust(width))
        line = "  ".join(parts)
        if text is not None:
            room = self.width - cell_len(line) - 2
            if room < 2:
                text = ""
            elif cell_len(text) > room:
                text = set_cell_size(text, room - 1) + "…"
            line += "  " + text
        return line.rstrip()

    def start(self) -> None:
        sys.stdout.write(self._line(self.header, "text" if self.layout.text else None) + "\n")

    def row(self, row) -> None:
        text = _visible(row.unit.raw.decode("utf-8", "replace")) if self.layout.text else None
        sys.stdout.write(self._line(self.layout.cells(row, ".4f"), text) + "\n")


def _visible(text: str) -> str:
    """Text for one table cell: escapes for tab, newline and the other control characters."""
    out = []
    for ch in text:
        if ch in "\t\n\r\\":
            out.append(tsv_escape(ch))
        elif not ch.isprintable() and ch != " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)
