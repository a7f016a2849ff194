"""Setting up a training run: presets, new runs, `--resume`, `--init-from`, output safety.

Pure option handling (presets, durations) sits at the top; `prepare` builds a `train.Run`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.config import DEFAULTS, PRESETS, ModelConfig, TrainConfig
from charrnn.errors import CharrnnError, CheckpointError, UsageError

MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)} - {"vocab_size"}
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
# model fields that only regularise training: a continued or fine-tuned run may change them
REGULARISERS = {"dropout", "weight_drop"}

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '10m', '2h', '1h30m', '1.5h'. UsageError if it does not parse."""
    s = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if not m:
            break
        total += float(m.group(1)) * scale[m.group(2)]
        pos = m.end()
    if not s or pos != len(s) or not 0 < total < float("inf"):
        raise UsageError(f"--max-time {text!r} is not a duration: use e.g. 90s, 10m, 2h or 1h30m")
    return total


def build_configs(
    preset: str | None, options: dict[str, Any]
) -> tuple[dict[str, Any], TrainConfig, set[str]]:
    """Merge our defaults, a preset and the explicit options (None = not given; explicit wins).

    Returns (model fields without vocab_size, TrainConfig, names of the explicit options).
    """
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    explicit = {k for k, v in options.items() if v is not None}
    merged: dict[str, Any] = dict(DEFAULTS)
    merged.update(PRESETS.get(preset or "", {}))
    merged.update({k: options[k] for k in explicit})
    if merged["optimizer"] != "adamw":  # weight decay is adamw's; the others have none
        if "weight_decay" in explicit and options["weight_decay"] != 0:
            raise UsageError(
                f"--weight-decay is adamw's decoupled weight decay; {merged['optimizer']} has "
                "none (use --optimizer adamw, or leave --weight-decay out)"
            )
        merged["weight_decay"] = 0.0
    unknown = set(merged) - MODEL_FIELDS - TRAIN_FIELDS
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}")
    model = {k: v for k, v in merged.items() if k in MODEL_FIELDS}
    train = TrainConfig(**{k: v for k, v in merged.items() if k in TRAIN_FIELDS})
    ModelConfig(vocab_size=1, **model).validate()
    train.validate()
    return model, train, explicit


@dataclass
class Request:
    """What the user asked `charrnn train` for."""

    sources: list[str]
    model: dict[str, Any]
    train: TrainConfig
    explicit: set[str] = field(default_factory=set)
    out: Path | None = None  # default: the resumed checkpoint's folder, else checkpoints/
    name: str | None = None
    resume: Path | None = None
    init_from: Path | None = None
    force: bool = False
    encoding: str = "utf-8"
    errors: str = "strict"
    errors_given: bool = False  # --errors given: strict then stops on a folder's non-text files
    globs: list[str] = field(default_factory=list)  # --glob: files to read under folders
    as_bytes: bool = False  # --bytes: the vocabulary is the 256 byte values
    preset: str | None = None
    # the budget (--max-time seconds, --steps, --epochs); a new run's size is chosen for it
    seconds: float | None = None
    steps: int | None = None
    epochs: float | None = None


def _with_weight_drop(cfg: ModelConfig, fixed: set[str]) -> ModelConfig:
    """The weight drop that goes with the model's dropout (budget.weight_drop_for), unless the
    user or a preset set it."""
    from charrnn import budget

    if "weight_drop" in fixed:
        return cfg
    return dataclasses.replace(cfg, weight_drop=budget.weight_drop_for(cfg.dropout)).validate()


def _size_for_budget(req: Request, cfg: ModelConfig, train_chars: int, chars_per_step: int):
    """A new run's layers, hidden size and dropout chosen for its budget (charrnn.budget), where
    neither the user nor a preset fixed them, and the weight drop that goes with the dropout.
    Returns (config, the choice as stored) or
    (cfg, None) when everything was fixed."""
    from charrnn import budget

    fixed = set(req.explicit) | set(PRESETS.get(req.preset or "", {}))
    if {"layers", "hidden", "dropout"} <= fixed:
        return _with_weight_drop(cfg, fixed), None
    chars = []
    if req.steps is not None:
        chars.append(req.steps * chars_per_step)
    if req.epochs is not None:
        chars.append(req.epochs * train_chars)
    gflops, probe_seconds = None, 0.0
    if req.seconds is not None and not ({"layers", "hidden"} <= fixed):
        gflops, probe_seconds = budget.machine_speed(cfg, req.train.threads)
    choice = budget.choose(
        cfg,
        train_chars=train_chars,
        seconds=None if req.seconds is None else max(1.0, req.seconds - probe_seconds),
        gflops=gflops,
        chars=min(chars) if chars else None,
        layers=cfg.layers if "layers" in fixed else None,
        hidden=cfg.hidden if "hidden" in fixed else None,
        dropout=cfg.dropout if "dropout" in fixed else None,
    )
    cfg = dataclasses.replace(
        cfg, layers=choice.layers, hidden=choice.hidden, dropout=choice.dropout
    ).validate()
    cfg = _with_weight_drop(cfg, fixed)
    stored = choice.to_dict()
    stored.update(
        gflops=gflops, probe_seconds=probe_seconds, train_chars=train_chars, seconds=req.seconds
    )
    return cfg, stored


def prepare(req: Request, targets=None):
    """Load the corpus and build (or restore) a `train.Run`. Returns (run, warnings).

    `targets` (`targets.claim(req)`, held by the caller for the whole run, as `charrnn train`
    does) settles the out folder and name and holds the run's lock from before the corpus is
    read. Without it, prepare makes the same checks itself but does not keep the lock."""
    from charrnn.targets import claim

    if targets is not None:
        return _prepare(req, targets)
    targets = claim(req)
    try:
        result = _prepare(req, targets)
    except BaseException:
        targets.release()
        raise
    targets.lock.release()
    return result


def _prepare(req: Request, targets):
    from charrnn.data import Batches, default_corpus_path, fit_batch, load_corpus, split_ids
    from charrnn.finetune import carry_weights, fit_vocab, remap_ids
    from charrnn.footprint import check_training
    from charrnn.model import CharRNN
    from charrnn.optim import make_optimizer
    from charrnn.sources import expand
    from charrnn.train import Run
    from charrnn.vocab import Vocab

    warnings: list[str] = list(targets.warnings)
    resumed, init = targets.resumed, targets.init
    base = resumed or init

    sources, globs = list(req.sources), list(req.globs)
    if resumed is not None and not globs:  # the run's own --glob, unless another is given
        globs = list(resumed.meta.get("corpus", {}).get("glob") or [])
    if not sources and resumed is not None:
        sources = list(resumed.meta.get("corpus", {}).get("sources", []))
        if not sources or not all(Path(s).exists() for s in sources):
            raise UsageError(
                f"the corpus this run trained on ({', '.join(sources) or 'stdin'}) is not "
                "found: pass it as CORPUS"
            )
    sources = sources or [str(default_corpus_path())]
    if req.as_bytes and base is not None and not base.vocab.is_bytes:
        raise UsageError("--bytes: the checkpoint is a character model (a byte model has 256)")
    as_bytes = req.as_bytes or (base is not None and base.vocab.is_bytes)
    if as_bytes and (req.encoding != "utf-8" or req.errors_given):
        raise UsageError("--bytes reads the bytes as they are: leave out --encoding and --errors")
    encoding = "latin-1" if as_bytes else req.encoding  # byte b is the symbol chr(b)
    strict = req.errors_given and req.errors == "strict"  # stop on a folder's non-text files
    found = expand(sources, globs, encoding, req.errors, strict=strict, as_bytes=as_bytes)
    corpus = load_corpus(found.files, encoding=encoding, errors=req.errors)
    if len(corpus.vocab) < 2:
        raise CharrnnError(
            f"{corpus.name} has a single distinct character: there is nothing to learn"
        )
    vocab = Vocab.of_bytes() if as_bytes else corpus.vocab

    train_cfg = req.train
    if base is not None:
        arch = base.config
        for name in sorted(req.explicit & MODEL_FIELDS):
            if req.model[name] != getattr(arch, name) and name not in REGULARISERS:
                raise UsageError(
                    f"--{name.replace('_', '-')} cannot change when continuing from a checkpoint "
                    f"(it has {getattr(arch, name)})"
                )
        vocab, added = fit_vocab(base.vocab, vocab, resuming=resumed is not None)
        warnings += [added] if added else []
        model_cfg = dataclasses.replace(
            arch,
            **{k: req.model[k] for k in REGULARISERS & req.explicit},
            vocab_size=len(vocab),
        )
    else:
        model_cfg = ModelConfig(vocab_size=len(vocab), **req.model)
    model_cfg.validate()

    if resumed is not None:
        try:
            saved = TrainConfig.from_dict(resumed.meta["train_config"]).validate()
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(
                f"{req.resume}: has no usable training config ({e}); "
                "use --init-from to take its weights only"
            ) from None
        for name in ("batch", "seq", "val_fraction", "test_fraction"):
            if name in req.explicit and getattr(train_cfg, name) != getattr(saved, name):
                raise UsageError(
                    f"--{name.replace('_', '-')} cannot change on --resume "
                    f"(the run uses {getattr(saved, name)})"
                )
        changes = {k: getattr(train_cfg, k) for k in req.explicit & TRAIN_FIELDS}
        train_cfg = dataclasses.replace(saved, **changes).validate()
        fp = resumed.meta.get("corpus", {})
        if fp.get("sha256") and fp.get("sha256") != corpus.fingerprint.get("sha256"):
            raise UsageError(
                "the corpus differs from the one this run trained on: pass the same corpus, "
                "or use --init-from to start a new run from these weights"
            )

    ids = corpus.ids
    if vocab != corpus.vocab:  # a byte model, or a checkpoint's vocabulary holding more
        spill = corpus.cache_path.parent if corpus.cache_path is not None else None
        ids = remap_ids(corpus.ids, corpus.vocab, vocab, spill)
    n = len(ids)
    train_sl, val_sl, _ = split_ids(n, train_cfg.val_fraction, train_cfg.test_fraction)
    train_ids, val_ids = ids[train_sl], ids[val_sl]
    batch, seq, warning = fit_batch(len(train_ids), train_cfg.batch, train_cfg.seq)
    if warning:
        warnings.append(warning)
        train_cfg = dataclasses.replace(train_cfg, batch=batch, seq=seq)

    sizing = None
    if base is None:
        model_cfg, sizing = _size_for_budget(req, model_cfg, len(train_ids), batch * seq)
    paths = (targets.latest_path, targets.best_path)
    check_training(model_cfg, train_cfg, paths, len(val_ids))  # memory, disk: before allocating
    rng = np.random.Generator(np.random.PCG64(train_cfg.rng_seed))
    model = CharRNN.create(model_cfg, rng)
    if base is not None:
        carry_weights(model, base.config, base.params, base.vocab, vocab)
    model.set_threads(train_cfg.threads)  # 0: all cores
    optimizer = make_optimizer(train_cfg, model.flat.size, model.flat.dtype)

    out, name = targets.out, targets.name
    corpus_meta = dict(corpus.fingerprint)
    corpus_meta["sources"] = [str(Path(s).resolve()) for s in sources if s != "-"]
    corpus_meta.update(encoding="bytes" if as_bytes else req.encoding, errors=req.errors)
    corpus_meta.update(found.meta())
    if found.folders:
        corpus_meta["name"] = found.name
    run = Run(
        model=model,
        optimizer=optimizer,
        batches=Batches(train_ids, batch=batch, seq=seq),
        val_ids=val_ids,
        vocab=vocab,
        train_config=train_cfg,
        corpus=corpus_meta,
        out_dir=out,
        name=name,
        rng=rng,
        sizing=sizing,
    )
    if resumed is not None:
        try:
            run.restore(resumed)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(
                f"{req.resume}: cannot resume from it, its training state is incomplete or "
                f"damaged ({type(e).__name__}: {e}); use --init-from to take its weights only"
            ) from None
    warnings += found.warnings(str(run.latest_path))
    return run, warnings
