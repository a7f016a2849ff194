"""`charrnn train`: parse options, set up the run, wire the display, handle signals, summarise."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from charrnn.commands import handle_errors
from charrnn.config import DEFAULTS, ModelConfig, TrainConfig


def _default(name: str) -> str:
    """' [default: X]' for an option's help, from our defaults (escaped for rich markup)."""
    value = DEFAULTS.get(name, getattr(ModelConfig(), name, None))
    if value is None:
        value = getattr(TrainConfig(), name)
    return f" \\[default: {value}]"


HELP = (
    "Train a character-level language model on text.\n\n"
    "With no CORPUS, trains on the bundled Shakespeare plays. A folder stands for every text "
    "file under it, recursively, in sorted path order (hidden ones left out; binary and "
    "undecodable files skipped with a warning). Checkpoints go to --out as NAME-latest.npz "
    "(every evaluation) and NAME-best.npz (best validation loss). --init-from onto text with new "
    "characters adds them to the vocabulary.\n\n"
    "With a budget (--max-time, --steps or --epochs) the model's size and dropout are chosen "
    "for it: the largest size the budget trains on enough characters per parameter (for "
    "--max-time, from the speed this machine shows), with dropout for the epochs it will "
    "train (from dropout 0.3, the recurrent weights dropped at 0.05 less); the first line says "
    "what was chosen and why. Flags you give always win: to pin the model for a reproducible "
    "run, pass the --layers, --hidden and --dropout that line prints. Without a budget: 2x256, "
    "dropout 0.3, weight drop 0.25, trained until val loss stops improving.\n\n"
    "Examples:\n\n"
    "  charrnn train poems.txt --max-time 10m\n\n"
    "  charrnn train src/ --glob '*.py' --name code --model gru --hidden 512\n\n"
    "  charrnn train notes.txt --init-from checkpoints/shakespeare-best.npz  # fine-tune\n\n"
    "  charrnn train firmware.bin --bytes\n\n"
    "  charrnn train --resume checkpoints/shakespeare-latest.npz --max-time 1h\n"
)

MODEL = "Model"
TRAIN = "Training"
STOP = "Stopping"
RUN = "Run"
DATA = "Data"


def command(
    corpus: list[str] = typer.Argument(
        None,
        help="Text file(s) or folder(s) to train on, or - for stdin. Default: the bundled corpus.",
    ),
    preset: str | None = typer.Option(
        None, help="Start from min-char-rnn's or char-rnn's defaults; other flags still win."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Cell: rnn, lstm, gru or cifg (an LSTM whose input gate is 1 - forget gate)."
        + _default("cell"),
        rich_help_panel=MODEL,
    ),
    nonlinearity: str | None = typer.Option(
        None, help="rnn only: tanh or relu." + _default("nonlinearity"), rich_help_panel=MODEL
    ),
    layers: int | None = typer.Option(
        None, help="Stacked layers. \\[default: chosen for the budget]", rich_help_panel=MODEL
    ),
    hidden: int | None = typer.Option(
        None,
        help="Hidden units per layer. \\[default: chosen for the budget]",
        rich_help_panel=MODEL,
    ),
    embed: int | None = typer.Option(
        None, help="Embedding size; 0 = one-hot input." + _default("embed"), rich_help_panel=MODEL
    ),
    dropout: float | None = typer.Option(
        None,
        help="Dropout on every layer's output (between layers and before the decoder), in "
        "[0, 1). \\[default: chosen for the model and corpus size]",
        rich_help_panel=MODEL,
    ),
    weight_drop: float | None = typer.Option(
        None,
        help="DropConnect on every layer's recurrent weights W_hh while training (AWD-LSTM's "
        "weight drop), in [0, 1). \\[default: the dropout less 0.05 from dropout 0.3, else 0]",
        rich_help_panel=MODEL,
    ),
    forget_bias: float | None = typer.Option(
        None,
        help="lstm, cifg: initial forget-gate bias (PyTorch's init if unset).",
        rich_help_panel=MODEL,
    ),
    bias: bool | None = typer.Option(
        None,
        "--bias/--no-bias",
        help="Bias tensors in every layer (--no-bias: none, as PyTorch's bias=False)."
        + _default("bias"),
        rich_help_panel=MODEL,
    ),
    peephole: bool | None = typer.Option(
        None,
        "--peephole/--no-peephole",
        help="lstm: the gates also see the cell state (Gers & Schmidhuber 2000)."
        + _default("peephole"),
        rich_help_panel=MODEL,
    ),
    proj: int | None = typer.Option(
        None,
        help="lstm: project h to this many units, fewer than --hidden (PyTorch's proj_size); "
        "0 = none." + _default("proj"),
        rich_help_panel=MODEL,
    ),
    batch: int | None = typer.Option(
        None, help="Parallel streams B." + _default("batch"), rich_help_panel=TRAIN
    ),
    seq: int | None = typer.Option(
        None, help="Steps T of truncated backprop." + _default("seq"), rich_help_panel=TRAIN
    ),
    lr: float | None = typer.Option(
        None, help="Learning rate." + _default("lr"), rich_help_panel=TRAIN
    ),
    optimizer: str | None = typer.Option(
        None,
        help="adam, adamw, rmsprop, adagrad or sgd." + _default("optimizer"),
        rich_help_panel=TRAIN,
    ),
    weight_decay: float | None = typer.Option(
        None,
        help="adamw's decoupled weight decay." + _default("weight_decay"),
        rich_help_panel=TRAIN,
    ),
    clip: float | None = typer.Option(
        None, help="Gradient clipping threshold; 0 = off." + _default("clip"), rich_help_panel=TRAIN
    ),
    clip_mode: str | None = typer.Option(
        None,
        help="norm (global L2 norm) or value (element-wise)." + _default("clip_mode"),
        rich_help_panel=TRAIN,
    ),
    schedule: str | None = typer.Option(
        None,
        help="constant, step (x0.97 per epoch after epoch 10) or cosine." + _default("schedule"),
        rich_help_panel=TRAIN,
    ),
    warmup_steps: int | None = typer.Option(
        None, help="cosine: linear warm-up steps." + _default("warmup_steps"), rich_help_panel=TRAIN
    ),
    epochs: float | None = typer.Option(
        None, help="Stop after this many epochs.", rich_help_panel=STOP
    ),
    steps: int | None = typer.Option(
        None, help="Stop at this step (counted from the run's start).", rich_help_panel=STOP
    ),
    max_time: str | None = typer.Option(
        None, help="Stop after this long: 90s, 10m, 2h, 1h30m.", rich_help_panel=STOP
    ),
    eval_every: int | None = typer.Option(
        None,
        help="Steps between evaluations. \\[default: about half an epoch, at most 1000 steps; "
        "more with small batches, so that evaluating takes under a tenth of the time]",
        rich_help_panel=STOP,
    ),
    out: Path | None = typer.Option(
        None, help="Checkpoint folder. \\[default: checkpoints/]", rich_help_panel=RUN
    ),
    name: str | None = typer.Option(
        None, help="Checkpoint name. \\[default: the corpus file's name]", rich_help_panel=RUN
    ),
    rng_seed: int | None = typer.Option(
        None,
        help="Seed for initialisation and dropout." + _default("rng_seed"),
        rich_help_panel=RUN,
    ),
    threads: int | None = typer.Option(
        None, help="CPU threads; 0 = all cores." + _default("threads"), rich_help_panel=RUN
    ),
    resume: Path | None = typer.Option(
        None, help="Continue a run exactly from its checkpoint.", rich_help_panel=RUN
    ),
    init_from: Path | None = typer.Option(
        None, help="Start from a checkpoint's weights with a fresh optimizer.", rich_help_panel=RUN
    ),
    force: bool = typer.Option(
        False, help="Overwrite checkpoints of another run with the same name.", rich_help_panel=RUN
    ),
    val_fraction: float | None = typer.Option(
        None,
        help="Share of the corpus held out for validation (the best checkpoint is chosen by "
        "it); taken from the end, before the test share." + _default("val_fraction"),
        rich_help_panel=DATA,
    ),
    test_fraction: float | None = typer.Option(
        None,
        help="Share held out at the very end for `charrnn eval`; 0 = none."
        + _default("test_fraction"),
        rich_help_panel=DATA,
    ),
    encoding: str = typer.Option(
        "utf-8", help="Text encoding of the corpus.", rich_help_panel=DATA
    ),
    errors: str | None = typer.Option(
        None,
        help="Undecodable bytes: strict (an error, also for files under a folder, which are "
        "otherwise skipped) or replace. \\[default: strict for files named, skip under folders]",
        rich_help_panel=DATA,
    ),
    glob: list[str] = typer.Option(
        None,
        "--glob",
        help="Under folders, read only files matching this pattern: '*.py' (by name), "
        "'lib/*.py' (by path in the folder). Repeatable.",
        rich_help_panel=DATA,
    ),
    as_bytes: bool = typer.Option(
        False,
        "--bytes",
        help="The vocabulary is the 256 byte values: any file trains (any encoding, or none); "
        "sampling writes raw bytes.",
        rich_help_panel=DATA,
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No live view: one log line per evaluation on stderr."
    ),
    log_jsonl: Path | None = typer.Option(
        None, help="Append one JSON record per evaluation to this file."
    ),
) -> None:
    run_training(**locals())


command.__doc__ = HELP


@handle_errors
def run_training(**o) -> None:
    from charrnn.errors import UsageError
    from charrnn.runs import Request, build_configs, parse_duration

    if o["errors"] not in (None, "strict", "replace"):
        raise UsageError(f"--errors {o['errors']!r}: use strict or replace")
    for flag in ("steps", "eval_every"):
        if o[flag] is not None and o[flag] < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1, got {o[flag]}")
    if o["epochs"] is not None and not 0 < o["epochs"] < float("inf"):
        raise UsageError(f"--epochs must be positive and finite, got {o['epochs']}")
    seconds = parse_duration(o["max_time"]) if o["max_time"] is not None else None
    if o["resume"] is not None and o["force"]:
        pass  # --force only matters for another run's files; resume writes its own
    options = {
        "cell": o["model"],
        "nonlinearity": o["nonlinearity"],
        "layers": o["layers"],
        "hidden": o["hidden"],
        "embed": o["embed"],
        "dropout": o["dropout"],
        "weight_drop": o["weight_drop"],
        "forget_bias": o["forget_bias"],
        "bias": o["bias"],
        "peephole": o["peephole"],
        "proj": o["proj"],
        "batch": o["batch"],
        "seq": o["seq"],
        "lr": o["lr"],
        "optimizer": o["optimizer"],
        "weight_decay": o["weight_decay"],
        "clip": o["clip"],
        "clip_mode": o["clip_mode"],
        "schedule": o["schedule"],
        "warmup_steps": o["warmup_steps"],
        "val_fraction": o["val_fraction"],
        "test_fraction": o["test_fraction"],
        "rng_seed": o["rng_seed"],
        "threads": o["threads"],
    }
    model_opts, train_cfg, explicit = build_configs(o["preset"], options)
    sources = list(o["corpus"] or [])
    if sources.count("-") > 1:
        raise UsageError("stdin (-) can be given only once")
    if "-" in sources and sys.stdin.isatty():
        typer.echo("charrnn: reading the corpus from the terminal; end it with Ctrl-D", err=True)
    req = Request(
        sources=sources,
        model=model_opts,
        train=train_cfg,
        explicit=explicit,
        out=o["out"],
        name=o["name"],
        resume=o["resume"],
        init_from=o["init_from"],
        force=o["force"],
        encoding=o["encoding"],
        errors=o["errors"] or "strict",
        errors_given=o["errors"] is not None,
        globs=list(o["glob"] or []),
        as_bytes=o["as_bytes"],
        preset=o["preset"],
        seconds=seconds,
        steps=o["steps"],
        epochs=o["epochs"],
    )
    _train(req, o, seconds)


def _train(req, o, seconds: float | None) -> None:
    from charrnn.targets import claim

    with claim(req, o["log_jsonl"]) as targets:  # checked and locked before any work
        _run(req, o, seconds, targets)


def _run(req, o, seconds: float | None, targets) -> None:
    from charrnn.failsafe import on_stop_signals, tolerant
    from charrnn.runs import prepare
    from charrnn.train import StopRule, Trainer, default_eval_every

    run, warnings = prepare(req, targets)
    for w in warnings:
        typer.echo(f"charrnn: warning: {w}", err=True)
    if run.sizing is not None:
        typer.echo(f"charrnn: {_sizing_line(run)}", err=True)
        if seconds is not None:  # measuring the machine's speed was part of the budget
            seconds = max(1.0, seconds - run.sizing["probe_seconds"])
    stop = StopRule(o["steps"], o["epochs"], seconds, validated=run.val_ids.size > 0)
    spe = run.batches.steps_per_epoch
    chars = run.batches.batch * run.batches.seq
    eval_every = o["eval_every"] or default_eval_every(spe, chars, int(run.val_ids.size))
    live = sys.stderr.isatty() and not o["quiet"]

    consumers = []
    if targets.log is not None:
        from charrnn.display import JsonlLog

        consumers.append((JsonlLog(targets.log), f"--log-jsonl {o['log_jsonl']}"))
    cfg = run.model_config
    features = "".join(f", {f}" for f in run.model.cell.features())
    title = (
        f"charrnn · {run.name} · {cfg.cell} {cfg.layers}×{cfg.hidden}{features} · "
        f"{run.model.flat.size:,} params · {run.corpus['name']} "
        f"({run.corpus['chars']:,} chars, {len(run.vocab)} symbols)"
    )
    from charrnn.display import Dashboard, PlainLog

    display = Dashboard(title, stop_seconds=seconds) if live else None
    consumers.append((display if display is not None else PlainLog(), "the progress log"))
    emit = tolerant(consumers)  # a log that cannot be written is dropped, training goes on
    sampler = _sampler(run) if live else None
    trainer = Trainer(run, stop, emit, eval_every, sample=sampler)
    interrupts = {"n": 0}

    def on_signal(signum, frame) -> None:
        interrupts["n"] += 1
        if interrupts["n"] > 1:
            raise KeyboardInterrupt
        trainer.request_stop()
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write("\ncharrnn: stopping after this step (Ctrl-C again to quit now)\n")

    restore = on_stop_signals(on_signal)  # Ctrl-C, SIGTERM, SIGHUP (unless ignored)
    if not live:
        typer.echo(
            f"charrnn: training {title.removeprefix('charrnn · ')}, {stop.describe()}; "
            f"evaluating every {eval_every} steps",
            err=True,
        )
    try:
        if display is not None:
            with display:
                reason = trainer.train()
        else:
            reason = trainer.train()
    finally:
        restore()
    _summary(run, trainer, reason)
    if reason == "interrupted":
        typer.echo(
            f"charrnn: interrupted; resume with: charrnn train --resume {run.latest_path}",
            err=True,
        )
        raise typer.Exit(130)


def _sizing_line(run) -> str:
    """One line: the model the budget chose, why, and the flags that pin it."""
    cfg, sz = run.model_config, run.sizing
    speed = f" at {sz['gflops']:.0f} GFLOP/s measured here" if sz.get("gflops") else ""
    chosen = "chosen for the budget" if sz.get("reads") is not None else "chosen"
    return (
        f"{cfg.cell} {cfg.layers}×{cfg.hidden}, dropout {cfg.dropout:g}, weight drop "
        f"{cfg.weight_drop:g}, {chosen}{speed}: {sz['reason']}. Pin it with --layers "
        f"{cfg.layers} --hidden {cfg.hidden} --dropout {cfg.dropout:g}"
    )


def _sampler(run):
    """A short sample of text for the dashboard at each evaluation (its own RNG)."""
    import numpy as np

    from charrnn.sample import SampleOptions, prime_ids, sample_texts
    from charrnn.step import prepare

    rng = np.random.default_rng(1234)
    options = SampleOptions(length=240, temperature=0.8)
    prime, _ = prime_ids(run.vocab, None)

    def sample(model) -> str:
        weights = prepare(model.config, model.params)
        text = sample_texts(weights, run.vocab, prime, options, rng, engine="numpy")[0]
        return run.vocab.readable(text)  # a byte model's bytes, shown as UTF-8

    return sample


def _summary(run, trainer, reason: str) -> None:
    import math

    from charrnn.display import rate

    best = run.best_val_loss
    stop = [e for e in (reason,) if e]
    cps = trainer.chars_per_second
    lines = [
        f"stopped: {stop[0] if stop else 'done'}",
        f"steps: {run.step:,} (epoch {run.epoch:.2f}), training time "
        f"{_duration(run.elapsed)}, {rate(cps)} chars/s",
    ]
    from charrnn.vocab import unit as vocab_unit

    unit = vocab_unit(run.vocab.kind)
    if math.isfinite(best):
        lines.append(
            f"best val loss: {best:.4f} nats/{unit} ({best / math.log(2):.3f} bits/{unit}) "
            f"at step {run.best_step:,}"
        )
    lines.append(f"latest checkpoint: {run.latest_path}")
    use = run.latest_path
    if run.best_path.exists():
        lines.append(f"best checkpoint: {run.best_path}")
        use = run.best_path
    if use.exists():
        lines.append(f"sample from it: charrnn sample --checkpoint {use} -n 500")
    typer.echo("\n".join(lines))


def _duration(seconds: float) -> str:
    from charrnn.train import format_duration

    return format_duration(seconds)
