"""A progress bar on stderr for work that turns out to be long: it appears only on a terminal and
only once the work has taken DELAY seconds, so quick commands stay quiet and pipelines are never
written to."""

from __future__ import annotations

import sys
import threading

DELAY = 1.0  # seconds of work before the bar appears


class DelayedBar:
    """Use as a context manager; call the instance with the amount done so far (characters or
    bytes, whatever `total` counts; total None: a count without a bar's end)."""

    def __init__(self, label: str, total: int | None, unit: str = "chars", enabled=None) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.done = 0
        self._bar = None
        self._task = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False

    def __enter__(self) -> DelayedBar:
        if self.enabled:
            self._timer = threading.Timer(DELAY, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __call__(self, done: int) -> None:
        with self._lock:
            self.done = done
            if self._bar is not None:
                self._bar.update(self._task, completed=done)

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with self._lock:
            if self._closed:
                return
            count = "{task.completed:,} " + self.unit
            if self.total is not None:
                count = "{task.completed:,}/{task.total:,} " + self.unit
            columns = [TextColumn(self.label), BarColumn(), TextColumn(count)]
            columns.append(TimeRemainingColumn() if self.total else TimeElapsedColumn())
            # never redirect stdout: the payload written meanwhile must go where stdout goes
            self._bar = Progress(
                *columns,
                console=Console(stderr=True),
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, completed=self.done)

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._bar is not None:
                self._bar.stop()
                self._bar = None
