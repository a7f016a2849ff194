"""scipy's BLAS GEMM called from nopython code, for the big products over all T*B rows (input
projections, weight gradients, the decoder). The small per-step products inside the time loops
use kernels/tiles instead.

`gemm(alpha, a, ta, b, tb, beta, c)` computes c = alpha * op(a) @ op(b) + beta * c for row-major
2-D arrays whose rows are contiguous (inner stride one; the row stride may be larger), with
op(x) = x.T when the flag is true. It calls `numba_xxgemm`, the BLAS entry Numba's own np.dot
uses, so it needs no ctypes pointers and compiled kernels stay cacheable.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.linalg import _BLAS

_BLAS()  # makes sure scipy's BLAS is importable and registered with Numba


def _xxgemm_type(dtype):
    ptr = types.CPointer(dtype)
    sig = types.intc(
        types.char,  # kind
        types.char,  # transa
        types.char,  # transb
        types.intp,  # m
        types.intp,  # n
        types.intp,  # k
        ptr,  # alpha
        ptr,  # a
        types.intp,  # lda
        ptr,  # b
        types.intp,  # ldb
        ptr,  # beta
        ptr,  # c
        types.intp,  # ldc
    )
    return types.ExternalFunction("numba_xxgemm", sig)


_XXGEMM32 = _xxgemm_type(types.float32)
_XXGEMM64 = _xxgemm_type(types.float64)
_KIND32 = ord("s")
_KIND64 = ord("d")
_N = ord("n")
_T = ord("t")


def _raw_gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major BLAS gemm on the data of arrays a, b, c (typed per dtype below)."""


@overload(_raw_gemm)
def _raw_gemm_impl(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    if c.dtype == types.float32:
        fn, kind = _XXGEMM32, _KIND32
    else:
        fn, kind = _XXGEMM64, _KIND64

    def impl(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        return fn(kind, transa, transb, m, n, k, alpha.ctypes, a.ctypes, lda, b.ctypes, ldb,
                  beta.ctypes, c.ctypes, ldc)  # fmt: skip

    return impl


@njit(cache=True, nogil=True, error_model="numpy")
def gemm(alpha, a, ta, b, tb, beta, c):
    """c (M, N) = alpha * op(a) (M, K) @ op(b) (K, N) + beta * c; rows of a, b, c contiguous."""
    m, n = c.shape
    k = a.shape[0] if ta else a.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        for i in range(m):
            for j in range(n):
                c[i, j] = beta * c[i, j]
        return
    isz = c.itemsize
    lda = max(a.strides[0] // isz, a.shape[1], 1)
    ldb = max(b.strides[0] // isz, b.shape[1], 1)
    ldc = max(c.strides[0] // isz, n, 1)
    al = np.empty(1, c.dtype)
    al[0] = alpha
    be = np.empty(1, c.dtype)
    be[0] = beta
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
    _raw_gemm(_T if tb else _N, _T if ta else _N, n, m, k, al, b, ldb, a, lda, be, c, ldc)
