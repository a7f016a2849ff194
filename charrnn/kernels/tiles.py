"""A register-tiled matrix product for the recurrent step, c (M, N) += a (M, K) @ b (K, N), with
b packed once per call into panels and reused for all T steps.

Why: inside the time loop the product has few rows (M = B streams: 1, 25, 50) and the same
weight every step. A BLAS GEMM re-packs the weight on every call and handles few rows poorly;
here the weight is packed once (`pack`), and each tile keeps MR rows x NPAN panels of the result
in vector registers while it walks K (LLVM IR written with llvmlite: vector loads, broadcasts
and llvm.fma). Numba caches the kernels like any other.

Vector width: the CPU's own, decided when the kernels are compiled (Numba compiles for the host
and keys its cache by the CPU): 512 bits (16 float32, 8 float64) with AVX-512, else 256 bits (8,
4). Each output column is still a sum over K in order, one fused multiply-add at a time, so the
width changes the speed, never the bits.

Packed layout: bp (NP, K, PW) with PW = 2 vectors (32 or 16 float32, 16 or 8 float64) and
NP = ceil(N / PW); columns past N are zero.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _wide() -> bool:
    """Whether the CPU Numba compiles for has 512-bit vectors (AVX-512F): the host, or the
    one NUMBA_CPU_NAME / NUMBA_CPU_FEATURES name."""
    import llvmlite.binding as ll
    from numba.core import config

    if config.CPU_NAME is not None:
        return "+avx512f" in (config.CPU_FEATURES or "").split(",")
    return bool(ll.get_host_cpu_features().get("avx512f", False))


_BYTES = 64 if _wide() else 32  # bytes per vector register


def _width(dtype) -> int:
    """Elements per vector register (AVX2: 8 float32, 4 float64; AVX-512: 16, 8)."""
    return _BYTES // (4 if dtype == types.float32 else 8)


def panel_width(dtype) -> int:
    """Columns per packed panel for a NumPy dtype: two vector registers."""
    return 2 * _BYTES // np.dtype(dtype).itemsize


def _make_tile(mr: int, npan: int):
    """An intrinsic computing c[0:mr, 0:npan*PW] += a[0:mr, 0:k] @ panels[0:npan] (k rows)."""

    @intrinsic
    def tile(typingctx, ref, a, b, c, k, lda, ldb, ldp, ldc):
        # ref: any array of the working dtype (selects float32 or float64); a, b, c: addresses;
        # ldb, ldp: elements from one row of a panel to the next, and from panel to panel
        sig = types.void(ref, a, b, c, k, lda, ldb, ldp, ldc)
        dtype = ref.dtype

        def codegen(context, builder, signature, args):
            _, a_addr, b_addr, c_addr, kk, lda_v, ldb_v, ldp_v, ldc_v = args
            fty = context.get_value_type(dtype)
            w = _width(dtype)
            pw = 2 * w
            vec = ir.VectorType(fty, w)
            fp, vp = fty.as_pointer(), vec.as_pointer()
            fma = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(vec, [vec, vec, vec]),
                f"llvm.fma.v{w}{'f32' if w == 8 else 'f64'}",
            )
            a_p = builder.inttoptr(a_addr, fp)
            b_p = builder.inttoptr(b_addr, fp)
            c_p = builder.inttoptr(c_addr, fp)

            # element types are given explicitly so this also holds with opaque pointers
            def at(base, off):
                return builder.gep(base, [off], source_etype=fty)

            def c_vec_ptr(i, p, v):
                off = builder.add(builder.mul(ir.Constant(_I64, i), ldc_v),
                                  ir.Constant(_I64, p * pw + v * w))  # fmt: skip
                return builder.bitcast(at(c_p, off), vp)

            slots = {}
            for i in range(mr):
                for p in range(npan):
                    for v in range(2):
                        s = cgutils.alloca_once(builder, vec)
                        builder.store(builder.load(c_vec_ptr(i, p, v), align=4, typ=vec), s)
                        slots[i, p, v] = s
            undef = ir.Constant(vec, ir.Undefined)
            zeros = ir.Constant(ir.VectorType(_I32, w), [0] * w)
            with cgutils.for_range(builder, kk) as loop:
                row = builder.mul(loop.index, ldb_v)
                bv = {}
                for p in range(npan):
                    base = builder.add(builder.mul(ldp_v, ir.Constant(_I64, p)), row)
                    for v in range(2):
                        ptr = at(b_p, builder.add(base, ir.Constant(_I64, v * w)))
                        bv[p, v] = builder.load(builder.bitcast(ptr, vp), align=4, typ=vec)
                for i in range(mr):
                    aoff = builder.add(builder.mul(ir.Constant(_I64, i), lda_v), loop.index)
                    scalar = builder.load(at(a_p, aoff), typ=fty)
                    one = builder.insert_element(undef, scalar, ir.Constant(_I32, 0))
                    bc = builder.shuffle_vector(one, undef, zeros)
                    for p in range(npan):
                        for v in range(2):
                            s = slots[i, p, v]
                            acc = builder.load(s, typ=vec)
                            builder.store(builder.call(fma, [bc, bv[p, v], acc]), s)
            for i in range(mr):
                for p in range(npan):
                    for v in range(2):
                        value = builder.load(slots[i, p, v], typ=vec)
                        builder.store(value, c_vec_ptr(i, p, v), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


def _make_transpose():
    """An intrinsic copying one square block of W x W elements (W = the vector width),
    transposed: dst row c = column c of the block at src (rows lds and ldd elements apart)."""

    @intrinsic
    def transpose(typingctx, ref, src, lds, dst, ldd):
        # ref: any array of the working dtype; src, dst: addresses
        sig = types.void(ref, src, lds, dst, ldd)
        dtype = ref.dtype

        def codegen(context, builder, signature, args):
            _, s_addr, lds_v, d_addr, ldd_v = args
            fty = context.get_value_type(dtype)
            w = _width(dtype)
            vec = ir.VectorType(fty, w)
            fp, vp = fty.as_pointer(), vec.as_pointer()

            def row(addr, i, ld):
                base = builder.inttoptr(addr, fp)
                off = builder.mul(ir.Constant(_I64, i), ld)
                return builder.bitcast(builder.gep(base, [off], source_etype=fty), vp)

            rows = [builder.load(row(s_addr, i, lds_v), align=4, typ=vec) for i in range(w)]
            # log2(W) rounds of pairing row i with row i + W/2 and interleaving their halves:
            # each round rotates an element's (row, column) bits left by one, so after log2(W)
            # rounds (row, column) has become (column, row)
            half = w // 2
            mask = ir.VectorType(_I32, w)
            lo = ir.Constant(mask, [j for t in range(half) for j in (t, w + t)])
            hi = ir.Constant(mask, [j for t in range(half, w) for j in (t, w + t)])
            for _ in range(w.bit_length() - 1):
                paired = []
                for i in range(half):
                    a, b = rows[i], rows[i + half]
                    paired += [builder.shuffle_vector(a, b, lo), builder.shuffle_vector(a, b, hi)]
                rows = paired
            for i in range(w):
                builder.store(rows[i], row(d_addr, i, ldd_v), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return transpose


_transpose = _make_transpose()
_t11, _t14 = _make_tile(1, 1), _make_tile(1, 4)
_t21, _t22 = _make_tile(2, 1), _make_tile(2, 2)
_t31, _t32 = _make_tile(3, 1), _make_tile(3, 2)
_t41, _t51, _t61 = _make_tile(4, 1), _make_tile(5, 1), _make_tile(6, 1)


@njit(nogil=True, inline="always")
def _tile(mr, npan, ref, a, b, c, k, lda, ldb, ldp, ldc):
    if mr == 6:
        _t61(ref, a, b, c, k, lda, ldb, ldp, ldc)
    elif mr == 5:
        _t51(ref, a, b, c, k, lda, ldb, ldp, ldc)
    elif mr == 4:
        _t41(ref, a, b, c, k, lda, ldb, ldp, ldc)
    elif mr == 3:
        if npan == 2:
            _t32(ref, a, b, c, k, lda, ldb, ldp, ldc)
        else:
            _t31(ref, a, b, c, k, lda, ldb, ldp, ldc)
    elif mr == 2:
        if npan == 2:
            _t22(ref, a, b, c, k, lda, ldb, ldp, ldc)
        else:
            _t21(ref, a, b, c, k, lda, ldb, ldp, ldc)
    elif npan == 4:
        _t14(ref, a, b, c, k, lda, ldb, ldp, ldc)
    else:
        _t11(ref, a, b, c, k, lda, ldb, ldp, ldc)


@njit(cache=True, nogil=True, error_model="numpy")
def pack(b, bp):
    """bp (NP, K, PW) = the columns of b (K, N) in panels of PW, zero-padded past N."""
    K, N = b.shape
    NP, _, PW = bp.shape
    zero = bp.dtype.type(0)
    full = N // PW
    for p in range(full):
        n0 = p * PW
        for k in range(K):
            src = b[k]
            dst = bp[p, k]
            for j in range(PW):
                dst[j] = src[n0 + j]
    if full < NP:
        n0 = full * PW
        for k in range(K):
            dst = bp[full, k]
            for j in range(PW):
                dst[j] = b[k, n0 + j] if n0 + j < N else zero


@njit(cache=True, nogil=True, error_model="numpy")
def pack_transposed(w, bp):
    """bp (NP, K, PW) = the columns of w.T for w (N, K): panel p holds rows p*PW.. of w.

    Full panels of a w with contiguous rows and K a multiple of the vector width are copied as
    square blocks transposed in registers (`_transpose`, 2.1-2.5x faster than element by element
    on Zen 4; this runs for every training step); the rest element by element."""
    N, K = w.shape
    NP, _, PW = bp.shape
    zero = bp.dtype.type(0)
    isz = bp.itemsize
    vw = PW // 2  # the vector width: a full panel is two columns of square blocks
    lds = w.strides[0] // isz
    blocks = K % vw == 0 and w.itemsize == isz and w.strides[1] == isz and w.strides[0] % isz == 0
    w0 = w.ctypes.data
    b0 = bp.ctypes.data
    for p in range(NP):
        panel = bp[p]
        n0 = p * PW
        if n0 + PW <= N and blocks:  # a full panel: square blocks transposed in registers
            for half in range(2):
                for k0 in range(0, K, vw):
                    src = w0 + ((n0 + half * vw) * lds + k0) * isz
                    _transpose(bp, src, lds, b0 + ((p * K + k0) * PW + half * vw) * isz, PW)
            continue
        if n0 + PW <= N:  # a full panel: each row of it gathered from PW rows of w
            for k in range(K):
                dst = panel[k]
                for j in range(PW):
                    dst[j] = w[n0 + j, k]
            continue
        for j in range(PW):
            n = n0 + j
            if n < N:
                row = w[n]
                for k in range(K):
                    panel[k, j] = row[k]
            else:
                for k in range(K):
                    panel[k, j] = zero


@njit(cache=True, nogil=True, error_model="numpy")
def mm_packed(a, bp, c, beta):
    """c (M, N) = a (M, K) @ b (K, N) + beta * c (beta 0 or 1), b given packed as bp.

    Rows of a and c must be contiguous (any row stride); so must bp's panel rows (PW elements),
    but its rows and panels may be any distance apart: `panels` gives a weight b (K, N) itself
    as a (NP, K, PW) view when N is a multiple of PW, read in place with no packing. Panels
    outer, rows inner: each panel (K x PW) stays in L1 while all row blocks of a stream past it.
    """
    M, K = a.shape
    N = c.shape[1]
    NP, _, PW = bp.shape
    isz = c.itemsize
    if beta == 0:
        for i in range(M):
            for j in range(N):
                c[i, j] = 0
    lda = a.strides[0] // isz
    ldc = c.strides[0] // isz
    ldp, ldb = bp.strides[0] // isz, bp.strides[1] // isz
    if bp.strides[2] != isz:
        raise ValueError("mm_packed: the panels' rows must be contiguous")
    a0 = a.ctypes.data
    b0 = bp.ctypes.data
    c0 = c.ctypes.data
    full = N // PW
    group = 4 if M == 1 else (2 if M <= 3 else 1)  # enough independent accumulators
    # row blocks as even as possible (25 rows = 5 x 5, not 4 x 6 + 1): a block of few rows
    # has too few independent accumulators to keep the FMA units busy
    nblk = (M + 5) // 6
    p = 0
    while p < full:
        npan = group if p + group <= full else 1
        m0 = 0
        for blk in range(nblk):
            mr = (M - m0) // (nblk - blk)
            _tile(mr, npan if mr <= 3 else 1, c, a0 + m0 * lda * isz, b0 + p * ldp * isz,
                  c0 + (m0 * ldc + p * PW) * isz, K, lda, ldb, ldp, ldc)  # fmt: skip
            m0 += mr
        p += npan
    if full < NP:  # the last, partial panel goes through a scratch tile
        scratch = np.zeros((6, PW), c.dtype)
        s0 = scratch.ctypes.data
        n0 = full * PW
        w = N - n0
        m0 = 0
        for blk in range(nblk):
            mr = (M - m0) // (nblk - blk)
            for i in range(mr):
                for j in range(w):
                    scratch[i, j] = c[m0 + i, n0 + j]
            _tile(mr, 1, c, a0 + m0 * lda * isz, b0 + full * ldp * isz, s0, K, lda, ldb, ldp, PW)
            for i in range(mr):
                for j in range(w):
                    c[m0 + i, n0 + j] = scratch[i, j]
            m0 += mr
