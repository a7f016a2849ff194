"""Every Numba-compiled function of charrnn lives here.

Arrays and scalars in, preallocated arrays out; no globals besides constants; the float32 and
float64 specialisations are the same source. Modules: `blas` (GEMM via scipy's BLAS, used for
the big products over all T*B rows), `tiles` (the register-tiled product with a packed weight
used inside the time loops), `activations` (fast float32 tanh/sigmoid, exact float64), `rnn`,
`lstm`, `gru` (forward and backward over T for one layer, and `infer`: a forward that keeps
nothing for a backward pass), `layers` (projections, gathers, scatters, bias sums, dropout),
`loss` (softmax cross-entropy), `optim` (clipping and optimizer updates), `step` (fused
sampling kernels, owned by the sampler).
"""
