"""What the command line does so that no failure shows a traceback or leaves debris.

* Standard streams: a closed stdin, stdout or stderr (`charrnn ... >&-`) gets /dev/null on its
  file descriptor, so no file we open later takes fd 0-2 and receives another stream's bytes;
  reading the closed stdin or writing the closed stdout is then one error line, a closed stderr
  swallows our messages.
* Signals: SIGTERM and SIGHUP end a command as Ctrl-C does (KeyboardInterrupt), so every
  `finally` runs and no temporary file is left behind; `charrnn train` installs its own handlers
  (save, then stop) while it trains. A signal the parent set to be ignored (nohup) stays ignored.
* Errors: every exception leaves as one line on stderr and an exit status (`describe`): ours
  (CharrnnError) as they are, running out of memory, disk or file descriptors with what to do,
  anything else as an internal error. `--debug` (or CHARRNN_DEBUG=1) prints the traceback too.
* Warnings: a library warning is one line, "charrnn: warning: ...".
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from charrnn.errors import CharrnnError, CharrnnWarning

DEBUG_ENV = "CHARRNN_DEBUG"
debug_flag = False  # set by `charrnn --debug` for this invocation
_STREAMS = ((0, "stdin", "standard input"), (1, "stdout", "standard output"), (2, "stderr", ""))

_ADVICE = {
    errno.ENOSPC: "no space left on device: free some space, or write elsewhere",
    errno.EDQUOT: "disk quota exceeded: free some space, or write elsewhere",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) and run again",
    errno.ENFILE: "too many open files on this system: close some programs and run again",
    errno.EROFS: "the file system is read-only: write elsewhere",
}


def debug_enabled() -> bool:
    """--debug was given, or CHARRNN_DEBUG is set to something true."""
    return debug_flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in (
        "",
        "0",
        "no",
        "false",
    )


# --------------------------------------------------------------------------- the process


STOP_SIGNALS = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)


def prepare_process() -> None:
    """Set up the process before any command runs (called by `charrnn.cli.main`)."""
    protect_std_streams()
    for sig in STOP_SIGNALS[1:]:
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _interrupt)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def on_stop_signals(handler: Callable[[int, Any], None]) -> Callable[[], None]:
    """Install `handler` for Ctrl-C, SIGTERM and SIGHUP, except those set to be ignored (nohup,
    a background job); returns the function that puts the previous handlers back."""
    old = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) != signal.SIG_IGN:
            old[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore


def tolerant(consumers: list[tuple[Callable[[Any], None], str]]) -> Callable[[Any], None]:
    """One function that calls every (consumer, label) with an event. A consumer whose output
    fails (a full disk, a reader gone) is dropped with one warning line, and the work goes on:
    a log must never end a training run."""
    live = list(consumers)

    def emit(event: Any) -> None:
        for pair in list(live):
            consumer, label = pair
            try:
                consumer(event)
            except OSError as e:  # BrokenPipeError included
                live.remove(pair)
                reason = _os_error(OSError(e.errno, e.strerror))
                _warn_line(f"cannot write {label} ({reason}); going on without it")

    return emit


def _warn_line(text: str) -> None:
    _line(f"charrnn: warning: {text}")


def _line(text: str) -> None:
    """One line on stderr, if stderr can still take it."""
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


class ClosedStream:
    """Stands for a standard stream that was closed when charrnn started: it is not a terminal,
    and reading or writing it raises OSError(EBADF) naming it."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.closed = False

    def _fail(self, *args: Any, **kwargs: Any):
        raise OSError(errno.EBADF, f"{self.label} is closed")

    read = readline = write = writelines = _fail

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fail()


def protect_std_streams() -> None:
    """Give closed fds 0-2 /dev/null, and sys.stdin/stdout/stderr a stand-in (see module doc)."""
    for fd, name, label in _STREAMS:
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            null = os.open(os.devnull, os.O_RDWR)
        except OSError:  # pragma: no cover - no /dev/null
            continue
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if name == "stderr":
            sys.stderr = open(fd, "w", closefd=False)  # noqa: SIM115 - lives as long as we do
        else:
            setattr(sys, name, ClosedStream(label))


# --------------------------------------------------------------------------- errors


def describe(exc: BaseException) -> tuple[str, int]:
    """The one line (without the "charrnn: error: " prefix) and exit status for an exception."""
    if isinstance(exc, CharrnnError):
        return str(exc), exc.exit_code
    if isinstance(exc, MemoryError):
        detail = _one_line(str(exc))
        return (
            "out of memory" + (f" ({detail})" if detail else "") + ": ask for less (a smaller "
            "model, batch or number of samples), or free some memory",
            1,
        )
    if isinstance(exc, OSError):
        return _os_error(exc), 1
    name = type(exc).__name__
    detail = _one_line(str(exc))
    return (
        f"internal error ({name}{': ' + detail if detail else ''}): this is a bug in charrnn; "
        "please report it with the command that caused it (`charrnn --debug ...` shows where)",
        1,
    )


def _os_error(e: OSError) -> str:
    where = e.filename if e.filename is not None else None
    advice = _ADVICE.get(e.errno)
    reason = advice or e.strerror or _one_line(str(e)) or type(e).__name__
    return f"{where}: {reason}" if where is not None else reason


def _one_line(s: str, limit: int = 300) -> str:
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def run_guarded(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a command body; its warnings become one line each and any exception one error line
    (`describe`) and its exit status, raised as typer.Exit. An interruption the body did not
    handle (Ctrl-C, SIGTERM, SIGHUP) is "charrnn: interrupted" and exit status 130."""
    import typer

    with _warnings_as_lines():
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            _flush_or_silence_stdout()
            _line("charrnn: interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:  # the reader went away (`| head`): not an error for us
            silence_stdout()
            raise typer.Exit(0) from None
        except Exception as e:
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
            message, code = describe(e)
            _flush_or_silence_stdout()  # stdout itself may be what failed: keep the exit quiet
            _line(f"charrnn: error: {message}")
            raise typer.Exit(code) from None


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush of stdout is quiet (after a
    broken pipe or a full disk)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _flush_or_silence_stdout() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        silence_stdout()


@contextmanager
def _warnings_as_lines():
    with warnings.catch_warnings():
        warnings.simplefilter("always", CharrnnWarning)
        if not debug_enabled():
            warnings.showwarning = _show_warning
        yield


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    prefix = "" if issubclass(category, CharrnnWarning) else f"{category.__name__}: "
    _warn_line(prefix + _one_line(str(message), 600))
