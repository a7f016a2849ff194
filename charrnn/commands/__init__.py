"""One module per CLI command. Each imports only typer and the standard library at the top, so
`charrnn --help` starts fast; the engine is imported inside the command body."""

from __future__ import annotations

import functools
import os
import sys

import typer

from charrnn.errors import CharrnnError


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error on stderr and return the Exit to raise."""
    typer.echo(f"charrnn: error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func):
    """Turn the project's own errors into one line on stderr and their exit status."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CharrnnError as e:
            raise fail(str(e), e.exit_code) from None
        except BrokenPipeError:
            # the reader went away (`| head`): not an error for us
            _silence_stdout()
            raise typer.Exit(0) from None

    return wrapper


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
