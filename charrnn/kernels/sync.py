"""A barrier for two threads inside nogil kernels: atomics written with llvmlite.

Two threads run the same kernel over different parts of the work and must meet several times
per character (a few microseconds apart), far too often for a Python lock or a thread pool
(tens of microseconds each). `barrier` spins on a counter instead: about 70 ns per meeting.

flags: int64 array of at least 2 * LINE entries, zeroed once and then owned by one pair of
threads; thread `who` (0 or 1) writes only flags[who * LINE] (one cache line each), and both
threads count the same barriers, so their counters are equal whenever both are outside a
kernel. A thread that waits long yields its core (sched_yield), so a machine with fewer free
cores than threads gets slow, never stuck; it counts those yields in flags[who * LINE + 1]
(`yields`), so that the caller can tell a pair that keeps waiting for each other (the other
core busy with other work) and run alone instead.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

LINE = 16  # int64 entries per 128 bytes: each thread's counter on a cache line of its own
SPINS = 4000  # pause instructions before a waiting thread yields its core


def _element(context, builder, arrty, arr, idx):
    a = context.make_array(arrty)(context, builder, arr)
    return builder.gep(a.data, [idx])


@intrinsic
def load_acquire(typingctx, arr, idx):
    """arr[idx] (int64 array), an atomic load with acquire ordering."""
    sig = types.int64(arr, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _element(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def store_release(typingctx, arr, idx, value):
    """arr[idx] = value (int64 array), an atomic store with release ordering."""
    sig = types.void(arr, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _element(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _pause(typingctx):
    """The x86 spin-wait hint."""

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause"
        )
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _yield(typingctx):
    """sched_yield(2) from libc: let another thread have this core."""

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield"
        )
        return builder.call(fn, [])

    return types.int32(), codegen


@njit(cache=True, nogil=True)
def barrier(flags, who, n):
    """Thread `who` (0 or 1) arrives at barrier number n and waits for the other to get there.
    Writes before it are visible to the other thread after it returns."""
    store_release(flags, who * LINE, n)
    other = (1 - who) * LINE
    spins = 0
    while load_acquire(flags, other) < n:
        _pause()
        spins += 1
        if spins == SPINS:
            _yield()
            flags[who * LINE + 1] += 1
            spins = 0


@njit(cache=True, nogil=True)
def meet(flags, who, n):
    """The next barrier after number n, or nothing for who < 0 (a single thread). Returns the
    barrier number now reached."""
    if who < 0:
        return n
    barrier(flags, who, n + 1)
    return n + 1


def yields(flags) -> int:
    """How often the two threads of `flags` gave their core away while waiting, so far (read
    it while neither is inside a kernel)."""
    return int(flags[1] + flags[LINE + 1])


@njit(cache=True, nogil=True)
def reached(flags, who):
    """The last barrier number thread `who` reached (0 for who < 0)."""
    if who < 0:
        return 0
    return load_acquire(flags, who * LINE)
