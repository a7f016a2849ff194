"""Optimizer updates and gradient clipping over ONE flat parameter buffer (P,) and ONE flat
gradient buffer (P,), in place, in a single pass each. Hyperparameters arrive as float64 and
are rounded to the buffer's dtype once, as PyTorch rounds its Python scalars. Each update
returns whether every parameter it wrote is finite (the divergence guard's check, made in the
same pass: an integer OR of the exponent bits, which vectorises)."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _inf_or_nan(typingctx, x):
    """1 if the float x is an infinity or a NaN (all exponent bits set), else 0, as an int64
    made from x's bits (so that a loop's OR of it vectorises)."""
    if not isinstance(x, types.Float):
        return None
    width = 32 if x == types.float32 else 64
    mantissa = 23 if width == 32 else 52

    def codegen(context, builder, signature, args):
        it = ir.IntType(width)
        bits = builder.bitcast(args[0], it)
        exp = ir.Constant(it, ((1 << (width - 1 - mantissa)) - 1) << mantissa)
        hit = builder.icmp_unsigned("==", builder.and_(bits, exp), exp)
        return builder.zext(hit, ir.IntType(64))

    return types.int64(x), codegen


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def sum_squares(g):
    """sum(g**2) of a flat (P,) buffer, accumulated in float64. Reassociation lets LLVM keep
    vector partial sums; the compiled order is fixed, so the result is deterministic."""
    s = 0.0
    for i in range(g.size):
        v = np.float64(g[i])
        s += v * v
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def scale(g, factor):
    """g *= factor in place."""
    f = g.dtype.type(factor)
    for i in range(g.size):
        g[i] *= f


@njit(cache=True, nogil=True, error_model="numpy")
def clamp(g, limit):
    """g = clip(g, -limit, limit) in place."""
    hi = g.dtype.type(limit)
    lo = -hi
    for i in range(g.size):
        g[i] = min(max(g[i], lo), hi)


@njit(cache=True, nogil=True, error_model="numpy")
def adam(p, g, m, v, step_size, beta1, beta2, bc2_sqrt, eps, decay):
    """torch.optim.Adam / AdamW (decoupled weight decay: p *= decay first, decay = 1 - lr*wd):
    m += (1-beta1) (g - m);  v = beta2 v + (1-beta2) g^2;
    p -= step_size * m / (sqrt(v) / bc2_sqrt + eps), step_size = lr / (1 - beta1^t),
    computed as p -= (step_size * bc2_sqrt) * m / (sqrt(v) + eps * bc2_sqrt): the same update
    with one division instead of two (the divider was the loop's bottleneck; float32 rounding
    differs from PyTorch's by an ulp or so)."""
    w1 = p.dtype.type(1.0 - beta1)
    b2 = p.dtype.type(beta2)
    w2 = p.dtype.type(1.0 - beta2)
    ss = p.dtype.type(-step_size * bc2_sqrt)
    ep = p.dtype.type(eps * bc2_sqrt)
    dk = p.dtype.type(decay)
    bad = 0
    for i in range(p.size):
        gi = g[i]
        mi = m[i] + w1 * (gi - m[i])
        vi = b2 * v[i] + w2 * gi * gi
        m[i] = mi
        v[i] = vi
        pn = p[i] * dk + ss * (mi / (np.sqrt(vi) + ep))
        p[i] = pn
        bad |= _inf_or_nan(pn)
    return bad == 0


@njit(cache=True, nogil=True, error_model="numpy")
def rmsprop(p, g, sq, lr, alpha, eps):
    """torch.optim.RMSprop (no momentum, not centered) = char-rnn's rmsprop:
    sq = alpha sq + (1-alpha) g^2;  p -= lr * g / (sqrt(sq) + eps)."""
    a = p.dtype.type(alpha)
    w = p.dtype.type(1.0 - alpha)
    nl = p.dtype.type(-lr)
    ep = p.dtype.type(eps)
    bad = 0
    for i in range(p.size):
        gi = g[i]
        s = a * sq[i] + w * gi * gi
        sq[i] = s
        pn = p[i] + nl * (gi / (np.sqrt(s) + ep))
        p[i] = pn
        bad |= _inf_or_nan(pn)
    return bad == 0


@njit(cache=True, nogil=True, error_model="numpy")
def adagrad(p, g, acc, lr, eps):
    """min-char-rnn's Adagrad: acc += g^2;  p -= lr * g / sqrt(acc + eps)."""
    nl = p.dtype.type(-lr)
    ep = p.dtype.type(eps)
    bad = 0
    for i in range(p.size):
        gi = g[i]
        a = acc[i] + gi * gi
        acc[i] = a
        pn = p[i] + nl * gi / np.sqrt(a + ep)
        p[i] = pn
        bad |= _inf_or_nan(pn)
    return bad == 0


@njit(cache=True, nogil=True, error_model="numpy")
def sgd(p, g, buf, lr, momentum):
    """torch.optim.SGD with momentum (dampening 0, not Nesterov): buf = momentum buf + g;
    p -= lr * buf. With buf starting at 0 the first step gives buf = g, as torch's does."""
    mo = p.dtype.type(momentum)
    nl = p.dtype.type(-lr)
    bad = 0
    for i in range(p.size):
        b = mo * buf[i] + g[i]
        buf[i] = b
        pn = p[i] + nl * b
        p[i] = pn
        bad |= _inf_or_nan(pn)
    return bad == 0
