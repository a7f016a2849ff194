"""The shared Numba-compiled building blocks every cell uses (each cell's own kernels live beside
it in charrnn/cells/<name>_kernels.py).

Arrays and scalars in, preallocated arrays out; no globals besides constants; the float32 and
float64 specialisations are the same source. Modules: `blas` (GEMM via scipy's BLAS, used for
the big products over all T*B rows), `tiles` (the register-tiled product with a packed weight
used inside the time loops), `activations` (fast float32 tanh/sigmoid, exact float64), `layers`
(projections, gathers, scatters, bias sums, dropout), `loss` (softmax cross-entropy), `optim`
(clipping and optimizer updates), `step` (the shared pieces of every cell's fused sampling
kernel), `sync` (the spinning barrier of the two-core sampling kernel).
"""
