"""Everything a training run will write, checked before the corpus is read or a model is built.

`claim(req, log)` settles the run's out folder and name, makes sure its checkpoints, its log
file and the corpus cache can be written, refuses to overwrite another run's checkpoints
(unless --force), takes the run's lock (charrnn/lock.py: one writer per run) and checks that a
model of the requested size can fit in memory at all. Whatever fails is one line naming the path
and what to do. The `Targets` it returns is held for the whole run (`with claim(...) as t:`);
releasing it lets the lock go and removes what it created that stayed empty (the out folder,
the log file), so a run that fails early leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from charrnn.checkpoint import checkpoint_paths
from charrnn.errors import CharrnnError, CheckpointError, UsageError
from charrnn.lock import RunLock, sweep

NAME = re.compile(r"[\w][\w.-]*")
# the longest file a run writes: ".NAME-latest.npz.0123abcd.tmp" (checkpoint.save's temporary)
NAME_OVERHEAD = len(".-latest.npz.0123abcd.tmp")


@dataclass
class Targets:
    """What `claim` settled and holds for a run (see the module doc)."""

    out: Path
    name: str
    lock: RunLock
    log: IO[str] | None = None
    resumed: Any = None  # the --resume checkpoint (checkpoint.Checkpoint), loaded once
    init: Any = None  # the --init-from checkpoint
    warnings: list[str] = field(default_factory=list)
    created: list[Path] = field(default_factory=list)  # folders and files made here, in order

    @property
    def latest_path(self) -> Path:
        return checkpoint_paths(self.out, self.name)[0]

    @property
    def best_path(self) -> Path:
        return checkpoint_paths(self.out, self.name)[1]

    def release(self) -> None:
        """Let the lock go, close the log, and remove what `claim` created if still empty."""
        if self.log is not None:
            with suppress(OSError):
                self.log.close()
            self.log = None
        self.lock.release()
        _remove_if_empty(self.created)
        self.created = []

    def __enter__(self) -> Targets:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim(req, log: Path | None = None) -> Targets:
    """Check every target of the training run `req` (a runs.Request) and take its lock."""
    from charrnn.checkpoint import load

    resumed = load(req.resume) if req.resume is not None else None
    init = load(req.init_from) if req.init_from is not None else None
    if resumed is not None and init is not None:
        raise UsageError("--resume and --init-from contradict each other: use one")
    out = _out_dir(req, resumed)
    name = run_name(req, resumed)
    _check_name(name, out)
    created: list[Path] = []
    lock = None
    try:
        _make_dir(out, "--out", created)
        lock = RunLock(out, name).acquire()
        targets = Targets(out, name, lock, None, resumed, init, [], created)
        if lock.unsupported:
            targets.warnings.append(
                f"cannot lock run {name!r} in {out} ({lock.unsupported}): a second run of this "
                "name would not be stopped"
            )
        if lock.took_over and lock.took_over.get("pid"):
            targets.warnings.append(
                f"run {name!r} was left locked by process {lock.took_over['pid']}, which is no "
                "longer running: taking it over"
            )
        if resumed is not None:
            _check_resumed_is_idle(req.resume, resumed, out, name)
        # a save killed halfway leaves its temporary file; we hold the run: none is in use
        sweep(out, (f".{name}-latest.npz.*.tmp", f".{name}-best.npz.*.tmp"), min_age=0)
        _check_checkpoints(targets, req, resumed)
        _check_cache_dir()
        _check_memory_early(req, resumed or init)
        if log is not None:
            targets.log = _open_log(Path(log), created)
        return targets
    except BaseException:
        if lock is not None:
            lock.release()
        _remove_if_empty(created)
        raise


def _remove_if_empty(created: list[Path]) -> None:
    """Remove what was created (folders, files), last first, where it is still empty."""
    for path in reversed(created):
        with suppress(OSError):
            if path.is_dir():
                path.rmdir()  # only when empty
            elif path.stat().st_size == 0:
                path.unlink()


# ------------------------------------------------------------------------ out folder and name


def _out_dir(req, resumed) -> Path:
    """--out; else the resumed checkpoint's folder; else checkpoints/."""
    if req.out is not None:
        return Path(req.out)
    return Path(req.resume).parent if resumed is not None else Path("checkpoints")


def corpus_name(sources: list[str]) -> str:
    """A run name from the first source: its file name without suffix, made safe."""
    first = sources[0]
    if first == "-":
        return "stdin"
    stem = re.sub(r"[^\w.-]+", "-", Path(first).stem).strip("-.")
    return stem or "model"


def run_name(req, resumed) -> str:
    """--name; else the resumed run's own; else from the corpus (the bundled one by default)."""
    if req.name:
        return req.name
    if resumed is not None and isinstance(resumed.meta.get("name"), str) and resumed.meta["name"]:
        return resumed.meta["name"]
    sources = list(req.sources)
    if not sources and resumed is not None:
        sources = [str(s) for s in resumed.meta.get("corpus", {}).get("sources", []) or []]
    if not sources:
        from charrnn.corpus import default_corpus_path

        sources = [str(default_corpus_path())]
    return corpus_name(sources)


def _check_name(name: str, out: Path) -> None:
    if not NAME.fullmatch(name):
        raise UsageError(f"--name {name!r}: use letters, digits, '.', '-' and '_'")
    limit = _name_max(out) - NAME_OVERHEAD
    size = len(name.encode("utf-8"))
    if size > limit:
        raise UsageError(
            f"the run name is too long ({size} bytes; checkpoint file names must fit in "
            f"{limit + NAME_OVERHEAD}): give a --name of at most {limit} characters"
        )


def _name_max(out: Path) -> int:
    """The longest file name the file system of `out` (or its nearest existing parent) takes."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _make_dir(path: Path, option: str, created: list[Path]) -> None:
    """Create folder `path` (and parents), noting what was created; prove it can be written."""
    missing = []
    p = path
    while not p.exists() and not p.is_symlink() and p != p.parent:
        missing.append(p)
        p = p.parent
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        created.extend(reversed(missing))
        with tempfile.NamedTemporaryFile(dir=path, prefix=".charrnn-probe-"):
            pass
    except OSError as e:
        raise CharrnnError(f"{option} {path}: cannot write there ({_reason(e)})") from None


def _reason(e: OSError) -> str:
    hints = {
        errno.EACCES: "permission denied: check its permissions, or choose another folder",
        errno.EPERM: "permission denied: check its permissions, or choose another folder",
        errno.EROFS: "the file system is read-only: choose another folder",
        errno.ENOSPC: "no space left on the device: free some space, or choose another folder",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
    }
    return hints.get(e.errno) or e.strerror or str(e)


# ------------------------------------------------------------------------ checkpoints


def existing_run_id(path: Path) -> str | None:
    """The run id of the checkpoint at `path`, '' if it is not readable, None if absent."""
    if not path.exists():
        return None
    from charrnn.checkpoint import load

    try:
        return str(load(path).meta.get("run_id", ""))
    except CheckpointError:
        return ""


def _check_checkpoints(targets: Targets, req, resumed) -> None:
    """The run's two checkpoint paths are files we may replace: not folders, and not another
    run's (unless --force)."""
    own = str(resumed.meta.get("run_id", "")) if resumed is not None else None
    for path in (targets.latest_path, targets.best_path):
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise CharrnnError(f"{path}: cannot check it ({_reason(e)})") from None
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(
                f"{path} is a folder where the run's checkpoint goes: move it, or pick another "
                "--name or --out"
            )
        owner = existing_run_id(path)
        if owner is not None and (own is None or owner != own) and not req.force:
            raise UsageError(
                f"{path} exists and belongs to another run: use --resume {path} to continue "
                "it, --name to pick another name, or --force to overwrite it"
            )


def _check_resumed_is_idle(path: Path, resumed, out: Path, name: str) -> None:
    """--resume of a run that another process is still training: RunBusy."""
    from charrnn.lock import probe

    own_out, own_name = Path(path).parent, resumed.meta.get("name")
    if isinstance(own_name, str) and NAME.fullmatch(own_name):
        same = own_name == name and _same_dir(own_out, out)
        if not same:
            probe(own_out, own_name)


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ------------------------------------------------------------------------ log, cache, memory


def _open_log(path: Path, created: list[Path]) -> IO[str]:
    """--log-jsonl opened for appending now, so a bad path fails before any work."""
    if path.is_dir():
        raise UsageError(f"--log-jsonl {path} is a folder: give a file to append to")
    existed = path.exists()
    if not path.parent.exists():
        _make_dir(path.parent, "--log-jsonl", created)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        if e.errno == errno.ENXIO:  # a named pipe nobody reads
            raise CharrnnError(
                f"--log-jsonl {path} is a named pipe with no reader: start the reader first"
            ) from None
        raise CharrnnError(f"--log-jsonl {path}: cannot write it ({_reason(e)})") from None
    os.set_blocking(fd, True)
    if not existed:
        created.append(path)
    return os.fdopen(fd, "a", encoding="utf-8")


def _check_cache_dir() -> None:
    """The corpus cache can be written somewhere (it falls back to a temporary folder)."""
    from charrnn.corpus import usable_cache_dir

    usable_cache_dir(None)


def _check_memory_early(req, base) -> None:
    """Refuse at once a model too big for memory whatever the corpus (resources.
    check_model_size); runs.prepare checks the whole run again once the corpus is read."""
    from charrnn.config import ModelConfig
    from charrnn.footprint import check_model_size

    if base is not None:
        cfg = base.config
    else:
        try:
            cfg = ModelConfig(vocab_size=2, **req.model).validate()
        except (TypeError, CharrnnError):
            return  # build_configs reports bad options
    check_model_size(cfg, req.train)
