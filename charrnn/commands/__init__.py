"""One module per CLI command. Each imports only typer and the standard library at the top, so
`charrnn --help` starts fast; the engine is imported inside the command body."""

from __future__ import annotations

import functools

import typer


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error on stderr and return the Exit to raise."""
    typer.echo(f"charrnn: error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func):
    """Run a command body so that any failure is one line on stderr and an exit status, and
    warnings one line each (charrnn/failsafe.py)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from charrnn.failsafe import run_guarded

        return run_guarded(func, *args, **kwargs)

    return wrapper
