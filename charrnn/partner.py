"""The second thread of two-core kernels (the fused sampler, the split scoring pass): a daemon
thread that runs the other half of each split call, one call at a time.

Daemon, so that it can never keep the process alive; each job gets its own reply queue, so a
call interrupted while waiting leaves nothing behind for the next one."""

from __future__ import annotations

import queue
import threading


class Partner(threading.Thread):
    """Runs fn(*args) for each `submit`, in order; the reply queue gets None or the exception."""

    def __init__(self) -> None:
        super().__init__(name="charrnn-partner", daemon=True)
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.start()

    def submit(self, fn, args) -> queue.SimpleQueue:
        reply: queue.SimpleQueue = queue.SimpleQueue()
        self.jobs.put((fn, args, reply))
        return reply

    def run(self) -> None:
        while True:
            fn, args, reply = self.jobs.get()
            try:
                fn(*args)
                reply.put(None)
            except BaseException as e:  # handed to the caller
                reply.put(e)


_PARTNER: Partner | None = None
_LOCK = threading.Lock()


def partner() -> Partner:
    """The process's partner thread, started on first use."""
    global _PARTNER
    with _LOCK:
        if _PARTNER is None:
            _PARTNER = Partner()
        return _PARTNER


class Pair:
    """This thread and the partner running the two halves of split kernels (kernels/sync.py:
    `flags`, their barrier). The halves meet several times per character, so they only pay
    while both threads have a core: after a call in which the barrier had to give its core
    away more than a few times (the other core busy with other work), the next calls run on
    this thread alone, ALONE_CALLS of them and twice as many after each failed try of the pair
    (up to MAX_ALONE), then the pair tries again. Split kernels give the same bits on one
    thread as on two, so this changes the pace, never the result."""

    # yields allowed per call, plus one per YIELD_STEPS steps. Each call starts with a few (the
    # partner wakes from its queue while this thread waits at the first barrier) and the OS
    # takes the core now and then; a core busy with other work costs about one per two steps
    # (measured: ~1,200 in a 2,000-step call). 4 + 1/128 per step sent ~10-30 % of a `sample`
    # command's calls alone on an idle Zen 4 host (-10-15 % chars/s).
    YIELDS = 16
    YIELD_STEPS = 16
    ALONE_CALLS = 8
    MAX_ALONE = 512

    def __init__(self, threads: int) -> None:
        import numpy as np

        from charrnn.kernels.sync import LINE

        self.threads = threads
        self.flags = np.zeros(2 * LINE, np.int64)
        self.alone = 0  # calls left to run alone
        self.backoff = self.ALONE_CALLS  # calls to run alone after the next failed try

    def run(self, kernel, args: tuple, parts: int, steps: int) -> None:
        """kernel(*args, lo, hi, flags, who) over `parts` parts of `steps` steps: on this
        thread alone (who = -1), or split in two, parts [1, parts) on the partner thread and
        part 0 here."""
        from charrnn.kernels.sync import yields

        if self.threads < 2 or parts < 2 or steps == 0 or self.alone:
            self.alone = max(0, self.alone - 1)
            kernel(*args, 0, parts, self.flags, -1)
            return
        before = yields(self.flags)
        done = partner().submit(kernel, (*args, 1, parts, self.flags, 1))
        kernel(*args, 0, 1, self.flags, 0)
        error = done.get()  # the partner ends right after this thread's last barrier
        if error is not None:
            raise error
        if yields(self.flags) - before > self.YIELDS + steps // self.YIELD_STEPS:
            self.alone = self.backoff
            self.backoff = min(self.MAX_ALONE, 2 * self.backoff)
        else:
            self.backoff = self.ALONE_CALLS
