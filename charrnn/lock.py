"""One writer per run: an advisory lock on a run's name in its out folder.

The lock is the file `.NAME.lock` in the out folder, held with flock(2) for as long as the run
goes. The kernel drops a flock when its holder exits in any way (SIGKILL and power loss
included), so a lock file nobody holds is stale by definition: the next run takes it over, with
no guessing from pids or ages. The holder writes who it is into the file (pid, host, start time,
command) so that a refused run can name it. NFS: Linux maps flock onto NFS byte-range locks, so
the lock holds across hosts too.

`orphaned(path)` uses the same idea for temporary files: a writer holds a flock on its file
while it writes (see `hold`), so an unlocked temporary file whose writer is gone can be deleted.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import socket
import sys
import time
from contextlib import suppress
from pathlib import Path

from charrnn.errors import CharrnnError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
ORPHAN_AGE = 60.0  # seconds: a temporary file younger than this may not be locked by its writer yet


class RunBusy(CharrnnError):
    """Another process holds the lock of this run."""


def lock_path(out: Path, name: str) -> Path:
    return Path(out) / f".{name}.lock"


class RunLock:
    """The lock of run `name` in folder `out`. `acquire()` or RunBusy; `release()` (also on
    garbage collection) lets it go and removes the file. `took_over` holds what a stale lock
    file said about its dead holder, when there was one."""

    def __init__(self, out: Path, name: str) -> None:
        self.path = lock_path(out, name)
        self.name = name
        self.fd: int | None = None
        self.took_over: dict | None = None
        self.unsupported: str | None = None  # why the file system could not lock, if it could not

    def acquire(self) -> RunLock:
        if fcntl is None:  # pragma: no cover
            return self
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunBusy(self._busy_message(holder)) from None
            except OSError as e:
                os.close(fd)
                if e.errno in _NO_LOCKS:  # a file system without locks: go on, unprotected
                    self.unsupported = e.strerror or str(e)
                    return self
                raise
            # the file may have been removed (its holder released it) between open and flock:
            # then we hold a lock on a file nobody else will open; start again
            if not _same_file(fd, self.path):
                os.close(fd)
                continue
            previous = _read_holder(fd)
            self.took_over = previous or None
            _write_holder(fd)
            self.fd = fd
            return self
        raise RunBusy(f"cannot lock {self.path}: it keeps changing under us")  # pragma: no cover

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        with suppress(OSError):
            self.path.unlink()  # while still held: nobody can take the file we are removing
        with suppress(OSError):
            os.close(fd)

    def __del__(self) -> None:
        self.release()

    def _busy_message(self, holder: dict) -> str:
        pid = holder.get("pid")
        who = f"process {pid}" if pid else "another process"
        host = holder.get("host")
        if host and host != socket.gethostname():
            who += f" on {host}"
        since = holder.get("started")
        if isinstance(since, (int, float)):
            who += f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
        command = holder.get("command")
        if isinstance(command, str) and command:
            shown = command if len(command) <= 80 else command[:77] + "..."
            who += f": {shown}"
        return (
            f"run {self.name!r} in {self.path.parent} is in use by {who}; wait for it to end "
            "or stop it, or pick another --name or --out"
        )


def probe(out: Path, name: str) -> None:
    """RunBusy if run `name` in `out` is going now; otherwise nothing (no lock is left held)."""
    if not lock_path(out, name).exists():
        return
    lock = RunLock(out, name)
    try:
        lock.acquire()
    finally:
        fd, lock.fd = lock.fd, None
        if fd is not None:
            os.close(fd)  # leave the file: its owner may come back for it (harmless if stale)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_holder(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8"))
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "command": "charrnn " + shlex.join(sys.argv[1:]),
    }
    with suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)


# ------------------------------------------------------------------------ temporary files


def hold(fd: int) -> None:
    """Mark an open temporary file as being written by this process (until it is closed)."""
    if fcntl is not None:
        with suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def orphaned(path: Path, min_age: float = ORPHAN_AGE) -> bool:
    """Whether the temporary file at `path` was left by a writer that is gone: older than
    `min_age` seconds and not held (see `hold`). False when unsure."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        if time.time() - path.lstat().st_mtime < min_age:
            return False
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def sweep(directory: Path, patterns: tuple[str, ...], min_age: float = ORPHAN_AGE) -> None:
    """Delete the orphaned temporary files matching `patterns` in `directory` (best effort).
    min_age 0: every unheld match (the caller holds the lock of everything that writes them)."""
    for pattern in patterns:
        try:
            found = list(Path(directory).glob(pattern))
        except OSError:
            return
        for path in found:
            if orphaned(path, min_age):
                with suppress(OSError):
                    path.unlink()
