"""The Typer app. Thin: each command lives in charrnn/commands/ and calls the library."""

from __future__ import annotations

import sys

import typer

from charrnn.commands import evaluate, inspect, sample, train

app = typer.Typer(
    name="charrnn",
    help="Train and sample character-level RNN, LSTM and GRU language models on the CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def options(
    debug: bool = typer.Option(
        False,
        "--debug",
        help="On a failure, print the traceback as well as the one-line error "
        "(also CHARRNN_DEBUG=1); before or after the command: charrnn train x.txt --debug",
    ),
) -> None:
    from charrnn import failsafe

    failsafe.debug_flag = debug


app.command("train")(train.command)
app.command("sample")(sample.command)
app.command("eval")(evaluate.command)
app.command("inspect")(inspect.command)


def hoist_debug(args: list[str]) -> list[str]:
    """`--debug` belongs to the app, not to a command: move it in front of the command wherever
    it was given (before a `--`, after which every word is an argument)."""
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[:end]:
        return args
    rest = [a for a in args[:end] if a != "--debug"] + args[end:]
    return ["--debug", *rest]


def main() -> None:
    from charrnn.failsafe import prepare_process

    prepare_process()
    try:
        app(args=hoist_debug(sys.argv[1:]))
    except KeyboardInterrupt:
        try:
            sys.stderr.write("charrnn: interrupted\n")
        except (OSError, ValueError):
            pass
        sys.exit(130)


if __name__ == "__main__":
    main()
