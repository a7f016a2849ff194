"""The non-recurrent pieces of a step: input projections, gathers and scatters by character id,
bias sums and dropout. Every product here is one GEMM over all T*B rows (N = T*B)."""

from __future__ import annotations

from numba import njit

from charrnn.kernels.blas import gemm


@njit(cache=True, nogil=True, error_model="numpy")
def id_range(ids):
    """(min, max) of a non-empty integer array of any shape and layout, in one call (two NumPy
    reductions cost more than the training step's gather at batch 1)."""
    lo = hi = ids.flat[0]
    for v in ids.flat:
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


@njit(cache=True, nogil=True, error_model="numpy")
def onehot_table(w_ih, bias, table):
    """table (V, G) = w_ih (G, V) transposed + bias (G,): row v is the projection of character v."""
    G, V = w_ih.shape
    transpose_into(w_ih, table)
    for v in range(V):
        row = table[v]
        for g in range(G):
            row[g] += bias[g]


@njit(cache=True, nogil=True, error_model="numpy")
def gather_columns(w_ih, bias, ids, out):
    """out (N, G)[n] = w_ih (G, V)[:, ids[n]] + bias (G,): the one-hot projection read straight
    from the weight, cheaper than building the (V, G) table when N is small."""
    N, G = out.shape
    for n in range(N):
        v = ids[n]
        dst = out[n]
        for g in range(G):
            dst[g] = w_ih[g, v] + bias[g]


@njit(cache=True, nogil=True, error_model="numpy")
def scatter_columns(d, ids, dw):
    """dw (G, V) = 0, then dw[:, ids[n]] += d (N, G)[n] for every n."""
    dw[:, :] = 0
    N, G = d.shape
    for n in range(N):
        v = ids[n]
        src = d[n]
        for g in range(G):
            dw[g, v] += src[g]


@njit(cache=True, nogil=True, error_model="numpy")
def gather_rows(table, ids, out):
    """out (N, G)[n] = table (V, G)[ids[n]] for ids (N,) int."""
    N, G = out.shape
    for n in range(N):
        src = table[ids[n]]
        dst = out[n]
        for g in range(G):
            dst[g] = src[g]


@njit(cache=True, nogil=True, error_model="numpy")
def scatter_rows(d, ids, acc):
    """acc (V, G)[ids[n]] += d (N, G)[n] for every n (acc is zeroed first)."""
    acc[:, :] = 0
    N, G = d.shape
    for n in range(N):
        dst = acc[ids[n]]
        src = d[n]
        for g in range(G):
            dst[g] += src[g]


@njit(cache=True, nogil=True, error_model="numpy")
def transpose_into(a, out):
    """out (C, R) = a (R, C) transposed, in 16 x 16 blocks (both sides stay in cache)."""
    R, C = a.shape
    for r0 in range(0, R, 16):
        r1 = min(R, r0 + 16)
        for c0 in range(0, C, 16):
            c1 = min(C, c0 + 16)
            for c in range(c0, c1):
                dst = out[c]
                for r in range(r0, r1):
                    dst[r] = a[r, c]


@njit(cache=True, nogil=True, error_model="numpy")
def project(x, w, bias, out):
    """out (N, G) = x (N, I) @ w (G, I)^T + bias (G,)."""
    N, G = out.shape
    for n in range(N):
        row = out[n]
        for g in range(G):
            row[g] = bias[g]
    one = out.dtype.type(1)
    gemm(one, x, False, w, True, one, out)


@njit(cache=True, nogil=True, error_model="numpy")
def colsum(d, out):
    """out (G,) = sum over rows of d (N, G)."""
    N, G = d.shape
    out[:] = 0
    for n in range(N):
        row = d[n]
        for g in range(G):
            out[g] += row[g]


@njit(cache=True, nogil=True, error_model="numpy")
def weight_grad(d, x, dw):
    """dw (G, I) = d (N, G)^T @ x (N, I): a weight gradient summed over all N rows."""
    one = dw.dtype.type(1)
    zero = dw.dtype.type(0)
    gemm(one, d, True, x, False, zero, dw)


@njit(cache=True, nogil=True, error_model="numpy")
def input_grad(d, w, dx, mask, use_mask):
    """dx (N, I) = d (N, G) @ w (G, I), times mask (N, I) when use_mask (dropout's backward)."""
    one = dx.dtype.type(1)
    zero = dx.dtype.type(0)
    gemm(one, d, False, w, False, zero, dx)
    if use_mask:
        N, C = dx.shape
        for n in range(N):
            for i in range(C):
                dx[n, i] *= mask[n, i]


@njit(cache=True, nogil=True, error_model="numpy")
def multiply(a, b, out):
    """out = a * b elementwise for (N, C) arrays (applies a dropout mask)."""
    N, C = out.shape
    for n in range(N):
        for i in range(C):
            out[n, i] = a[n, i] * b[n, i]


@njit(nogil=True, error_model="numpy", inline="always")
def stack_rows(below, own, bias, x, a):
    """The operands of one stacked step (lstm/rnn.infer_stacked): x (B, 2H) = [below, own] row
    by row for below, own (B, H); a (B, G) = bias (G,) in every row."""
    B, H = below.shape
    G = bias.size
    for b in range(B):
        xb = x[b]
        lo = below[b]
        hi = own[b]
        for j in range(H):
            xb[j] = lo[j]
        for j in range(H):
            xb[H + j] = hi[j]
        ab = a[b]
        for j in range(G):
            ab[j] = bias[j]
