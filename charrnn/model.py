"""CharRNN: a stacked recurrent character model (any cell of charrnn.cells), its loss and its
gradients.

Data flow of one training step (`loss_and_grad`), for B streams of T characters, L layers of
H units whose output h is R wide (R = H, or P with a projection), G gates (the cell's: 1 rnn,
4 lstm, 3 gru), vocabulary V, N = T*B:

    x (B, T) ids ──▶ time-major ids (T, B)
      layer 0 input projection XG (T, B, G*H):
          one-hot: row gather of the table weight_ih_l0^T + biases (V, G*H) (or, for fewer
              than V characters, a gather of weight_ih_l0's columns)
          embedding: encoder.weight[x] (T, B, E) @ weight_ih_l0^T (one GEMM over N rows)
      layer k: recurrence over T in one compiled kernel of the cell (Cell.forward); only
          h @ weight_hh^T is inside the loop (a register-tiled product with weight_hh^T packed
          once per call, kernels/tiles). Outputs hs_k (T+1, B, R) with hs_k[0] = the initial h.
      layer k+1 input = hs_k[1:] * dropout mask_k (T, B, R)  ─▶ one GEMM to XG of layer k+1
      decoder: hs_{L-1}[1:] * mask_{L-1} (N, R) @ decoder.weight^T + bias ─▶ logits (N, V)
          (the top layer's mask only with config.output_dropout, as char-rnn and Zaremba et al.)
      loss = mean over N of -log softmax(logits)[y]   (nats per character)
    weight drop (config.weight_drop, training only): the whole step runs with each layer's
    weight_hh * mask (L masks shaped as weight_hh, drawn per step), and weight_hh's gradient is
    multiplied by the same mask.
    backward: the same in reverse; dW_hh, dW_ih, the biases and the decoder gradients are one
    GEMM or sum over all N rows each, after the time loop (Cell.backward returns dL/d(gates));
    one-hot dW_ih is a scatter-add.

Parameters live in ONE flat buffer `flat` (P,) in `config.param_shapes` order, with
`params[name]` views named and shaped exactly as PyTorch's state_dict, so a trained model loads
into torch.nn.LSTM/GRU/RNN(batch_first=True) + nn.Linear (+ nn.Embedding) unchanged. Gradients
come back the same way (grad_flat (P,) and views). The recurrent state is a tuple of (L, B, width)
arrays: (h,) or (h, c) for an LSTM; it is carried between calls by the caller.

With threads > 1 and enough streams, the B streams are split into shards, each run start to end
(forward, backward, its own gradient buffer) in its own thread with single-threaded BLAS; the
shard gradients are then summed in a fixed order, so results are deterministic for a given
thread count. A CharRNN is not safe to call from several threads at once (it reuses its
preallocated buffers); it sets the BLAS thread pools of the process to what a call needs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from charrnn import cells
from charrnn.config import ModelConfig
from charrnn.cpus import cpu_count
from charrnn.kernels import layers as lk
from charrnn.kernels import loss as loss_k

State = tuple[np.ndarray, ...]  # ("h",) or ("h", "c"): each (L, B, width), model dtype

MIN_SHARD_ROWS = 8  # a shard gets at least this many streams
STACKED_MIN_ROWS = 4  # rows a shard needs for lstm/rnn.infer_stacked (see _forward_shard)
# with at most this many streams, the backward pass reads W_hh in place (cells.base.panels):
# packing it costs more than it saves when one row reads it per step (5 % of an LSTM 1x128
# B1 T25 step on Zen 4; at 2 to 16 rows the two were within noise)
IN_PLACE_ROWS = 1
INFER_ROWS = 8192  # forward / nll process at most this many characters (B * steps) at a time


@dataclass
class StepResult:
    """What `loss_and_grad` returns. grads are views into grad_flat; state carries no graph."""

    loss: float  # mean nats per character
    grad_flat: np.ndarray  # (P,)
    grads: dict[str, np.ndarray]
    dstate: State  # dL/d(initial state), each (L, B, H)
    state: State  # final state, fresh arrays, each (L, B, H)


@dataclass
class ForwardResult:
    logits: np.ndarray  # (B, T, V)
    state: State
    hidden: list[np.ndarray] | None  # per layer (B, T, R), or None


# ----------------------------------------------------------------------------- threads


class _Blas:
    """Holds numpy's and scipy's BLAS thread pools (separate libraries) at a chosen size."""

    def __init__(self) -> None:
        self._controller = None
        self._current = -1

    def set(self, n: int) -> None:
        if n == self._current:
            return
        if self._controller is None:
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        self._controller.limit(limits=n, user_api="blas")
        self._current = n


_BLAS = _Blas()


def set_blas_threads(n: int) -> None:
    """Hold numpy's and scipy's BLAS at n threads (1 while several threads call BLAS)."""
    _BLAS.set(n)


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, cpu_count() - 1), thread_name_prefix="shard")
    return _POOL


# ----------------------------------------------------------------------------- workspace


class _Work:
    """Preallocated time-major buffers of one shard for (Bs streams, T steps)."""

    def __init__(self, cell, bs: int, t: int, dtype: np.dtype, sizes: dict):
        cfg = cell.config
        g, r, v, n_layers = cell.gates * cell.hidden, cell.width, cfg.vocab_size, cfg.layers
        e = np.empty
        self.xg = [e((t, bs, g), dtype) for _ in range(n_layers)]
        self.hs = [e((t + 1, bs, r), dtype) for _ in range(n_layers)]
        self.dhs = [e((t, bs, r), dtype) for _ in range(n_layers)]
        self.xin = [e((t, bs, r), dtype) if k else None for k in range(n_layers)]
        # the top layer's output after its dropout mask: the decoder's input when training
        self.top = e((t, bs, r), dtype) if cfg.output_dropout and cfg.dropout else None
        self.cell = [cell.work(t, bs, dtype) for _ in range(n_layers)]  # the cell's own scratch
        if cfg.embed:
            self.emb = e((t * bs, cfg.embed), dtype)
            self.demb = e((t * bs, cfg.embed), dtype)
        else:
            self.dtable = e((v, g), dtype)
        self.logits = e((t * bs, v), dtype)
        self._grad_spec = (sizes["P"], sizes["shapes"], dtype)
        self.grad: np.ndarray | None = None  # this shard's gradient when there are several
        self.grads: dict[str, np.ndarray] = {}

    def shard_grads(self) -> dict[str, np.ndarray]:
        if self.grad is None:
            size, shapes, dtype = self._grad_spec
            self.grad = np.empty(size, dtype)
            self.grads = _views(self.grad, shapes)
        return self.grads


def _views(flat: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Views of flat (P,) named and shaped as `shapes`, in order."""
    out, off = {}, 0
    for name, shape in shapes.items():
        n = 1
        for d in shape:
            n *= d
        out[name] = flat[off : off + n].reshape(shape)
        off += n
    return out


@dataclass
class _Prepared:
    """Per-call derived copies of the weights, shared by all shards."""

    # per layer, the cell's (Cell.derive): whh_t, whh (backward only), bias (the input side's,
    # (G*H,)), wcat (inference above the first layer, cells with infer_stacked; else None)
    layers: list
    table: np.ndarray | None  # one-hot: (V, G*H) = weight_ih_l0^T + layers[0].bias


# ----------------------------------------------------------------------------- model


class CharRNN:
    """A character-level recurrent model with PyTorch-named parameters in one flat buffer.

    Attributes: config (ModelConfig), cell (charrnn.cells), dtype, flat (P,), params (name ->
    view), shapes
    (name -> shape), threads (cores one call may use; default 1), parallel ("auto" or "shards":
    with threads > 1 split the B streams into shards of >= MIN_SHARD_ROWS, one per thread;
    "blas": one shard, multi-threaded BLAS only; kept for benchmarking, it is slower here).
    """

    def __init__(self, config: ModelConfig, flat: np.ndarray, dtype=np.float32):
        self.config = config
        self.cell = cells.get(config)
        self.dtype = np.dtype(dtype)
        self.shapes = self.cell.param_shapes()
        self.flat = flat
        self.params = _views(flat, self.shapes)
        self._threads = 1
        self._work: dict[tuple, _Work] = {}
        self._frozen: dict[tuple, _Prepared] | None = None  # see copy(frozen=True)
        self.parallel = "auto"  # "auto" | "shards" | "blas": how threads > 1 are used

    # -- construction

    @classmethod
    def create(cls, config: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> CharRNN:
        """PyTorch's default initialisation: U(-1/sqrt(H), 1/sqrt(H)) for every recurrent
        tensor, U(-1/sqrt(R), 1/sqrt(R)) for the decoder (nn.Linear(R, V); R = H without a
        projection), N(0, 1) for the embedding; forget_bias sets bias_ih's forget block to the
        value and bias_hh's to 0 (cells with a forget gate)."""
        config.validate()
        size = sum(int(np.prod(s)) for s in cells.get(config).param_shapes().values())
        model = cls(config, np.empty(size, dtype), dtype)
        for name, shape in model.shapes.items():
            if name == "encoder.weight":
                value = rng.standard_normal(shape)
            else:
                width = config.output_size if name.startswith("decoder") else config.hidden
                bound = 1.0 / np.sqrt(width)
                value = rng.uniform(-bound, bound, shape)
            model.params[name][...] = value
        model.cell.initialise(model.params)
        return model

    @classmethod
    def from_params(cls, config: ModelConfig, params: dict, dtype=np.float32) -> CharRNN:
        """Copy `params` (PyTorch names) into a new model; ValueError names any missing, extra,
        mis-shaped or non-finite tensor."""
        config.validate()
        shapes = cells.get(config).param_shapes()
        missing = [n for n in shapes if n not in params]
        extra = sorted(set(params) - set(shapes))
        if missing:
            raise ValueError(f"parameter {missing[0]} is missing")
        if extra:
            raise ValueError(f"parameter {extra[0]} is not part of this model")
        size = sum(int(np.prod(s)) for s in shapes.values())
        model = cls(config, np.empty(size, dtype), dtype)
        for name, shape in shapes.items():
            value = np.asarray(params[name])
            if value.shape != shape:
                raise ValueError(f"parameter {name} has shape {value.shape}, expected {shape}")
            if value.dtype.kind not in "fiu":
                raise ValueError(f"parameter {name} has dtype {value.dtype}, expected floats")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"parameter {name} holds non-finite values")
            model.params[name][...] = value
        return model

    def copy(self, threads: int = 0, frozen: bool = False) -> CharRNN:
        """An independent model with the same weights (its own buffers: one per thread when
        several threads run models side by side), using `threads` cores per call.

        frozen: the caller promises never to change the copy's weights, so the weights derived
        for each call (packed, transposed, bias sums) are derived once and kept. Frozen copies
        of a frozen model share its weights and what is derived from them (one copy in the
        cache, however many threads read it); only their buffers are their own."""
        if frozen and self._frozen is not None:
            twin = CharRNN(self.config, self.flat, self.dtype)
            twin._frozen = self._frozen
        else:
            twin = CharRNN.from_params(self.config, self.params, self.dtype)
            if frozen:
                twin._frozen = {}
        twin.set_threads(threads)
        return twin

    # -- threads

    @property
    def threads(self) -> int:
        return self._threads

    @threads.setter
    def threads(self, n: int) -> None:
        self.set_threads(n)

    def set_threads(self, n: int) -> None:
        """How many cores one call may use; 0 means all available."""
        n = int(n)
        if n < 0:
            raise ValueError(f"threads must be 0 (all) or positive, got {n}")
        self._threads = cpu_count() if n == 0 else n

    # -- state

    def zero_state(self, batch: int) -> State:
        widths = self.cell.state_widths()
        return tuple(np.zeros((self.config.layers, batch, widths[n]), self.dtype) for n in widths)

    # -- public computations

    def loss_and_grad(
        self, x, y, state=None, *, rng=None, masks=None, weight_masks=None
    ) -> StepResult:
        """Mean cross-entropy (nats/char) of predicting y from x, and its gradient.

        x, y (B, T) int ids; state: initial State (None = zeros); masks: explicit dropout masks,
        config.dropout_masks (B, T, H) arrays, already scaled by 1/(1-p): mask k multiplies
        layer k's output (the last, with output_dropout, the decoder's input); weight_masks:
        explicit weight-drop masks, one per layer shaped as its weight_hh, scaled by
        1/(1-weight_drop): the step runs with weight_hh * mask, and weight_hh's gradient is
        that of the product. Masks not given are drawn from rng (needed when dropout or
        weight_drop > 0), the dropout masks first.
        """
        x, y = self._ids(x, "x"), self._ids(y, "y")
        if x.shape != y.shape:
            raise ValueError(f"x {x.shape} and y {y.shape} differ in shape")
        B, T = x.shape
        state = self._state(state, B)
        masks = self._masks(masks, rng, B, T)
        wmasks = self._weight_masks(weight_masks, rng)
        params = self.params
        if wmasks is not None:  # the step's weights: W_hh of each layer times its mask
            params = dict(params)
            for k, m in enumerate(wmasks):
                params[f"weight_hh_l{k}"] = self.params[f"weight_hh_l{k}"] * m
        prep = self._prepare(x.size, backward=True, few_rows=B <= IN_PLACE_ROWS, params=params)
        grad = np.empty(self.flat.size, self.dtype)
        grads = _views(grad, self.shapes)
        final = tuple(np.empty_like(s) for s in state)
        dstate = tuple(np.empty_like(s) for s in state)
        x_tb, y_tb = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)
        scale = 1.0 / (B * T)
        bounds = self._shards(B)
        works = [self._workspace(i, bounds[i + 1] - bounds[i], T) for i in range(len(bounds) - 1)]
        # shard 0 writes the result's buffer itself, the others their own, added to it after
        shard_grads = [grads] + [w.shard_grads() for w in works[1:]]

        def run(i: int) -> float:
            b0, b1 = bounds[i], bounds[i + 1]
            w, g = works[i], shard_grads[i]
            sl = slice(b0, b1)
            m = [np.ascontiguousarray(mk[sl].transpose(1, 0, 2)) for mk in masks] if masks else None
            self._forward_shard(w, prep, x_tb[:, sl], state, sl, m, final, keep=True)
            loss = loss_k.xent_backward(w.logits, _flat_ids(y_tb[:, sl]), scale)
            self._backward_shard(w, prep, x_tb[:, sl], m, g, dstate, sl)
            return loss

        losses = self._run(run, len(bounds) - 1)
        for w in works[1:]:  # sum the shards' gradients in a fixed order
            np.add(grad, w.grad, out=grad)
        for k, m in enumerate(wmasks or ()):  # d(W * m)/dW = m
            np.multiply(grads[f"weight_hh_l{k}"], m, out=grads[f"weight_hh_l{k}"])
        return StepResult(float(sum(losses)) * scale, grad, grads, dstate, final)

    def forward(self, x, state=None, *, return_hidden=False) -> ForwardResult:
        """Logits (B, T, V) for ids x (B, T), the final state, and optionally every layer's
        outputs (B, T, H). No dropout, no gradients."""
        x = self._ids(x, "x")
        B, T = x.shape
        cfg = self.config
        logits = np.empty((B, T, cfg.vocab_size), self.dtype)
        hidden = None
        if return_hidden:
            r = cfg.output_size
            hidden = [np.empty((B, T, r), self.dtype) for _ in range(cfg.layers)]

        def collect(w: _Work, sl: slice, ts: slice) -> None:
            n, bs = ts.stop - ts.start, sl.stop - sl.start
            logits[sl, ts] = w.logits.reshape(n, bs, -1).transpose(1, 0, 2)
            if hidden is not None:
                for k, hk in enumerate(hidden):
                    hk[sl, ts] = w.hs[k][1:].transpose(1, 0, 2)

        final = self._infer(x, self._state(state, B), collect)
        return ForwardResult(logits, final, hidden)

    def nll(self, x, y, state=None) -> tuple[np.ndarray, State]:
        """Negative log-likelihood (B, T) float64 nats of y given x, and the final state."""
        x, y = self._ids(x, "x"), self._ids(y, "y")
        if x.shape != y.shape:
            raise ValueError(f"x {x.shape} and y {y.shape} differ in shape")
        B, T = x.shape
        out = np.empty((B, T), np.float64)
        y_tb = np.ascontiguousarray(y.T)

        def collect(w: _Work, sl: slice, ts: slice) -> None:
            n, bs = ts.stop - ts.start, sl.stop - sl.start
            rows = np.empty(n * bs, np.float64)
            loss_k.xent_rows(w.logits, _flat_ids(y_tb[ts, sl]), rows)
            out[sl, ts] = rows.reshape(n, bs).T

        final = self._infer(x, self._state(state, B), collect)
        return out, final

    def _infer(self, x: np.ndarray, state: State, collect) -> State:
        """Forward passes over x (B, T) in time chunks of at most INFER_ROWS // B steps (so a
        long text needs bounded memory), calling collect(work, streams, steps) after each
        shard's chunk; returns the final state."""
        B, T = x.shape
        step = max(1, min(T, INFER_ROWS // B))
        prep = self._prepare(B * step, backward=False)
        x_tb = np.ascontiguousarray(x.T)
        bounds = self._shards(B)
        for t0 in range(0, T, step):
            ts = slice(t0, min(T, t0 + step))
            final = tuple(np.empty_like(s) for s in state)

            n = ts.stop - ts.start
            works = [
                self._workspace(i, bounds[i + 1] - bounds[i], n) for i in range(len(bounds) - 1)
            ]

            def run(i: int, ts=ts, state=state, final=final, works=works) -> float:
                sl = slice(bounds[i], bounds[i + 1])
                w = works[i]
                self._forward_shard(w, prep, x_tb[ts, sl], state, sl, None, final, keep=False)
                collect(w, sl, ts)
                return 0.0

            self._run(run, len(bounds) - 1)
            state = final
        return state

    # -- validation helpers

    def _ids(self, a, name: str) -> np.ndarray:
        a = np.asarray(a)
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"{name} must be a non-empty (B, T) array of ids, got {a.shape}")
        if a.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer ids, got {a.dtype}")
        lo, hi = lk.id_range(a)
        if lo < 0 or hi >= self.config.vocab_size:
            raise ValueError(f"{name} holds ids outside [0, {self.config.vocab_size})")
        return a.astype(np.intp, copy=False)

    def _state(self, state, batch: int) -> State:
        if state is None:
            return self.zero_state(batch)
        widths = self.cell.state_widths()
        names = tuple(widths)
        if len(state) != len(names):
            raise ValueError(f"state must hold {len(names)} arrays {names}, got {len(state)}")
        out = []
        for name, s in zip(names, state, strict=True):
            s = np.asarray(s)
            shape = (self.config.layers, batch, widths[name])
            if s.shape != shape:
                raise ValueError(f"state {name} has shape {s.shape}, expected {shape}")
            out.append(s.astype(self.dtype, copy=False))
        return tuple(out)

    def _masks(self, masks, rng, B: int, T: int):
        cfg = self.config
        n = cfg.dropout_masks
        if masks is not None:
            if len(masks) != n:
                raise ValueError(
                    f"masks must hold {n} arrays (one per dropped layer output), got {len(masks)}"
                )
            out = []
            for k, m in enumerate(masks):
                m = np.asarray(m, self.dtype)
                if m.shape != (B, T, cfg.output_size):
                    raise ValueError(
                        f"mask {k} has shape {m.shape}, expected {(B, T, cfg.output_size)}"
                    )
                out.append(m)
            return out or None
        if n == 0:
            return None
        if rng is None:
            raise ValueError("dropout > 0 needs rng (or explicit masks) for training steps")
        keep = 1.0 - cfg.dropout
        scale = self.dtype.type(1.0 / keep)
        out = []
        for _ in range(n):
            u = rng.random((B, T, cfg.output_size), dtype=self.dtype)
            out.append(np.where(u < keep, scale, self.dtype.type(0)))
        return out

    def _weight_masks(self, masks, rng):
        cfg = self.config
        shapes = [self.shapes[f"weight_hh_l{k}"] for k in range(cfg.layers)]
        if masks is not None:
            if len(masks) != cfg.layers:
                raise ValueError(
                    f"weight_masks must hold {cfg.layers} arrays (one per layer), got {len(masks)}"
                )
            out = [np.asarray(m, self.dtype) for m in masks]
            for k, m in enumerate(out):
                if m.shape != shapes[k]:
                    raise ValueError(f"weight mask {k} has shape {m.shape}, expected {shapes[k]}")
            return out
        if cfg.weight_drop == 0.0:
            return None
        if rng is None:
            raise ValueError("weight_drop > 0 needs rng (or explicit weight_masks)")
        # 16 random bits per weight (a tenth of the time of uniform floats): kept below
        # `cut`, so the keep probability is cut / 2^16 (1 - weight_drop to within 2^-17)
        cut = max(1, round((1.0 - cfg.weight_drop) * 65536))
        scale = self.dtype.type(65536 / cut)
        out = []
        for s in shapes:
            bits = np.frombuffer(rng.bytes(2 * s[0] * s[1]), np.uint16).reshape(s)
            m = (bits < cut).astype(self.dtype)
            m *= scale
            out.append(m)
        return out

    # -- machinery

    def _shards(self, B: int) -> list[int]:
        n = self._threads
        if n > 1 and self.parallel != "blas":
            n = min(n, max(1, B // MIN_SHARD_ROWS))
        else:
            n = 1
        if n == 1:
            _BLAS.set(self._threads if B > 4 else 1)
        else:
            _BLAS.set(1)
        return [i * B // n for i in range(n + 1)]

    def _run(self, fn, n: int) -> list[float]:
        if n == 1:
            return [fn(0)]
        futures = [_pool().submit(fn, i) for i in range(1, n)]
        first = fn(0)
        return [first] + [f.result() for f in futures]

    def _workspace(self, i: int, bs: int, t: int) -> _Work:
        """Buffers of shard i for (bs streams, t steps), kept for the next call of that shape.
        Called from the calling thread only, before the shards start."""
        key = (i, bs, t)
        w = self._work.get(key)
        if w is None:
            if len(self._work) >= 8:
                self._work.clear()
            w = _Work(self.cell, bs, t, self.dtype, {"P": self.flat.size, "shapes": self.shapes})
            self._work[key] = w
        return w

    def _prepare(self, rows: int, backward: bool, few_rows: bool = False, params=None) -> _Prepared:
        """Derived weights for a call over `rows` = B*T characters (one-hot input reads
        weight_ih_l0's columns directly when there are fewer rows than the vocabulary);
        weight_hh for the backward pass only when `backward` (read in place with `few_rows`
        streams, see Cell.derive). From `params` when given (a training step's weight-dropped
        W_hh), else the model's own. Kept when frozen."""
        if params is None:
            params = self.params
        if self._frozen is None or params is not self.params:
            return self._derive(params, rows, backward, few_rows)
        key = (rows >= self.config.vocab_size, backward, few_rows)
        if key not in self._frozen:
            self._frozen[key] = self._derive(params, rows, backward, few_rows)
        return self._frozen[key]

    def _derive(self, p: dict, rows: int, backward: bool, few_rows: bool) -> _Prepared:
        cfg = self.config
        layers = [self.cell.derive(p, k, backward, few_rows) for k in range(cfg.layers)]
        table = None
        if not cfg.embed and rows >= cfg.vocab_size:
            w0 = p["weight_ih_l0"]
            table = np.empty((cfg.vocab_size, w0.shape[0]), self.dtype)
            lk.onehot_table(w0, layers[0].bias, table)
        return _Prepared(layers, table)

    def _forward_shard(self, w: _Work, prep, x_tb, state, sl, masks, final, keep) -> None:
        """Forward pass of one shard: fills w.hs and w.logits (N, V), and when `keep` (a
        backward pass follows) what it needs: w.xg (activations) and the cell's own (w.cell)."""
        cfg, p, cell = self.config, self.params, self.cell
        T, bs = x_tb.shape
        N = T * bs
        ids = _flat_ids(x_tb)
        for k in range(cfg.layers):
            lw = prep.layers[k]
            xg = w.xg[k]
            xg2 = xg.reshape(N, -1)
            hs = w.hs[k]
            hs[0] = state[0][k, sl]
            # input side made step by step (inference, enough rows to share each weight read)
            stacked = lw.wcat is not None and not keep and bs >= STACKED_MIN_ROWS
            if k == 0:
                if cfg.embed:
                    lk.gather_rows(p["encoder.weight"], ids, w.emb)
                    lk.project(w.emb, p["weight_ih_l0"], lw.bias, xg2)
                elif prep.table is None:
                    lk.gather_columns(p["weight_ih_l0"], lw.bias, ids, xg2)
                else:
                    lk.gather_rows(prep.table, ids, xg2)
            elif not stacked:
                inp = w.hs[k - 1][1:].reshape(N, -1)
                if masks is not None:
                    lk.multiply(inp, masks[k - 1].reshape(N, -1), w.xin[k].reshape(N, -1))
                    inp = w.xin[k].reshape(N, -1)
                lk.project(inp, p[f"weight_ih_l{k}"], lw.bias, xg2)
            below = w.hs[k - 1][1:] if stacked else None
            cell.forward(lw, w.cell[k], xg, hs, state, final, k, sl, keep, below)
            final[0][k, sl] = hs[T]
        top = w.hs[cfg.layers - 1][1:].reshape(N, -1)
        if masks is not None and len(masks) == cfg.layers:
            lk.multiply(top, masks[-1].reshape(N, -1), w.top.reshape(N, -1))
            top = w.top.reshape(N, -1)
        lk.project(top, p["decoder.weight"], p["decoder.bias"], w.logits)

    def _backward_shard(self, w: _Work, prep: _Prepared, x_tb, masks, g, dstate, sl) -> None:
        """Backward pass of one shard from w.logits holding dL/dlogits; writes every gradient
        in g (a dict of views) exactly once, and dstate[:][k, sl]."""
        cfg, p, cell = self.config, self.params, self.cell
        T, bs = x_tb.shape
        N = T * bs
        L = cfg.layers
        dropped = masks is not None and len(masks) == L  # the decoder read the masked top
        top = (w.top if dropped else w.hs[L - 1][1:]).reshape(N, -1)
        lk.weight_grad(w.logits, top, g["decoder.weight"])
        lk.colsum(w.logits, g["decoder.bias"])
        mask = masks[-1].reshape(N, -1) if dropped else w.logits
        lk.input_grad(w.logits, p["decoder.weight"], w.dhs[L - 1].reshape(N, -1), mask, dropped)
        for k in range(L - 1, -1, -1):
            dgi, dgh = cell.backward(prep.layers[k], w.cell[k], w.xg[k], w.hs[k], w.dhs[k],
                                     dstate, k, sl, g)  # fmt: skip
            dgi2 = dgi.reshape(N, -1)
            dgh2 = dgh.reshape(N, -1)
            lk.weight_grad(dgh2, w.hs[k][:T].reshape(N, -1), g[f"weight_hh_l{k}"])
            if cfg.bias:
                lk.colsum(dgh2, g[f"bias_hh_l{k}"])
                if dgi is dgh:  # one pre-activation: both biases get the same gradient
                    g[f"bias_ih_l{k}"][...] = g[f"bias_hh_l{k}"]
                else:
                    lk.colsum(dgi2, g[f"bias_ih_l{k}"])
            if k > 0:
                inp = w.hs[k - 1][1:] if masks is None else w.xin[k]
                lk.weight_grad(dgi2, inp.reshape(N, -1), g[f"weight_ih_l{k}"])
                m = masks[k - 1].reshape(N, -1) if masks is not None else dgi2
                below = w.dhs[k - 1].reshape(N, -1)
                lk.input_grad(dgi2, p[f"weight_ih_l{k}"], below, m, masks is not None)
            elif cfg.embed:
                lk.weight_grad(dgi2, w.emb, g["weight_ih_l0"])
                lk.input_grad(dgi2, p["weight_ih_l0"], w.demb, w.demb, False)
                lk.scatter_rows(w.demb, _flat_ids(x_tb), g["encoder.weight"])
            elif prep.table is None:
                lk.scatter_columns(dgi2, _flat_ids(x_tb), g["weight_ih_l0"])
            else:
                lk.scatter_rows(dgi2, _flat_ids(x_tb), w.dtable)
                lk.transpose_into(w.dtable, g["weight_ih_l0"])


def _flat_ids(ids_tb: np.ndarray) -> np.ndarray:
    """(T, Bs) ids, possibly a column slice, as a contiguous (T*Bs,) array."""
    return np.ascontiguousarray(ids_tb).reshape(-1)
