"""The PyTorch peer: a plain nn.LSTM script trained with charrnn's recipe, for the same minutes.

One-hot input, nn.LSTM(V, H, L, dropout=p, batch_first=True), nn.Dropout(p) on the top layer's
output, nn.Linear(H, V), and with the recipe's weight_drop each layer's weight_hh dropped for the
step (F.dropout of the weight, through torch.func.functional_call); char-rnn's batch layout with
the state carried (and detached) from batch to batch; the optimizer, clipping and learning-rate
schedule of the recipe (charrnn.optim.get_lr, cosine over the steps the budget allows);
validation on the whole validation split every `eval_every` steps, the best weights kept; then
each held-out text scored in one stateful pass from the zero state (N - 1 predictions), exactly
as `charrnn eval` scores.

    python benchmarks/peers/torch_lstm.py --minutes 10 --threads 2 --recipe '{"hidden": 384, ...}'
"""

from __future__ import annotations

import argparse
import copy
import json
import math

import numpy as np
import torch
from common import ROOT, Budget, emit, load_splits, set_threads

from charrnn.config import TrainConfig
from charrnn.data import Batches
from charrnn.optim import get_lr


class Model(torch.nn.Module):
    def __init__(
        self, vocab: int, hidden: int, layers: int, dropout: float, weight_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.vocab, self.layers, self.weight_drop = vocab, layers, weight_drop
        self.rnn = torch.nn.LSTM(vocab, hidden, layers, dropout=dropout, batch_first=True)
        self.drop = torch.nn.Dropout(dropout)
        self.decoder = torch.nn.Linear(hidden, vocab)

    def forward(self, x, state):
        inp = torch.nn.functional.one_hot(x, self.vocab).float()
        if self.training and self.weight_drop:  # AWD-LSTM's weight drop: W_hh dropped per step
            dropped = {
                f"weight_hh_l{k}": torch.nn.functional.dropout(
                    getattr(self.rnn, f"weight_hh_l{k}"), self.weight_drop
                )
                for k in range(self.layers)
            }
            out, state = torch.func.functional_call(self.rnn, dropped, (inp, state))
        else:
            out, state = self.rnn(inp, state)
        return self.decoder(self.drop(out)), state


@torch.no_grad()
def stream_loss(model: Model, ids: np.ndarray, batch: int, seq: int) -> float:
    """Mean nats/char over ids laid out as `batch` stateful streams (charrnn's validation)."""
    model.eval()
    n = len(ids) - 1
    b = max(1, min(batch, n))
    length = n // b
    x = torch.from_numpy(ids[: b * length].reshape(b, length))
    y = torch.from_numpy(ids[1 : b * length + 1].reshape(b, length))
    state, total = None, 0.0
    for t0 in range(0, length, seq):
        logits, state = model(x[:, t0 : t0 + seq], state)
        total += torch.nn.functional.cross_entropy(
            logits.reshape(-1, model.vocab), y[:, t0 : t0 + seq].reshape(-1), reduction="sum"
        ).item()
    model.train()
    return total / (b * length)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared/corpora/tinyshakespeare.txt"))
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--steps", type=int, default=None, help="a step budget instead (a check)")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--recipe", required=True, help="JSON: model and training config fields")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    r = json.loads(args.recipe)
    set_threads(args.threads)
    torch.manual_seed(args.seed)
    from pathlib import Path

    data = load_splits(Path(args.corpus))
    V = len(data.vocab)
    train_fields = {k: v for k, v in r.items() if k in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**train_fields)
    model = Model(V, r["hidden"], r["layers"], r["dropout"], r.get("weight_drop") or 0.0)
    params = list(model.parameters())
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas)
    batches = Batches(data.train, cfg.batch, cfg.seq)
    spe = batches.steps_per_epoch
    eval_every = max(10, min(1000, spe // 2))
    budget = Budget(args.minutes * 60 if args.minutes else math.inf)
    if args.steps:
        budget.total_steps = args.steps
    best, best_state, state, step, history = math.inf, None, None, 0, []
    train_loss = []

    def done() -> bool:
        return step >= args.steps if args.steps else budget.over()

    while not done():
        x, y, new_epoch = batches.next()
        if new_epoch:
            state = None
        lr = get_lr(step, step / spe, cfg, budget.total_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        logits, state = model(torch.from_numpy(x.astype(np.int64)), state)
        state = tuple(s.detach() for s in state)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), torch.from_numpy(y.astype(np.int64)).reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        step += 1
        train_loss.append(loss.item())
        if step == 20 and not args.steps:
            budget.estimate(step)
        if step % eval_every == 0 or done():
            val = stream_loss(model, data.val, cfg.batch, cfg.seq)
            history.append((round(budget.elapsed(), 1), step, round(val, 4)))
            if val < best:
                best, best_state = val, copy.deepcopy(model.state_dict())
            if not args.steps:
                budget.estimate(step)
    train_seconds = budget.elapsed()
    model.load_state_dict(best_state)
    emit(
        {
            "system": "pytorch-lstm",
            "recipe": r,
            "steps": step,
            "epochs": round(step / spe, 2),
            "chars_per_second": round(step * cfg.batch * cfg.seq / train_seconds),
            "train_seconds": round(train_seconds, 1),
            "best_val": round(best, 4),
            "final_train": round(float(np.mean(train_loss[-eval_every:])), 4),
            "test": stream_loss(model, data.test, 1, 1024),
            "last10": stream_loss(model, data.last10, 1, 1024),
            "history": history,
        }
    )


if __name__ == "__main__":
    main()
