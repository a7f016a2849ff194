"""The transformer peer: a small GPT in PyTorch with nanoGPT's documented CPU recipe for
shakespeare_char, for the same minutes on the same cores.

Model (written here, after nanoGPT's design): token and position embeddings, `layers` pre-norm
blocks (LayerNorm without bias, causal multi-head self-attention, 4x GELU MLP, no biases), a final
LayerNorm and a decoder tied to the token embedding; weights N(0, 0.02), the residual projections
N(0, 0.02 / sqrt(2 * layers)). Recipe (nanoGPT README, "I only have a macbook"): 4 layers, 4 heads,
128 wide, block 64, batch 12, no dropout; AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on
matrices and embeddings only, 100 warm-up steps then cosine to 1e-4 over the steps the budget
allows, clip 1.0; random windows of the training text; val estimated on 20 random batches every
250 steps (and at the end), the best weights kept. Scoring: every held-out character from the
33rd on, each with 33 to 64 characters of context (windows of 64 at stride 32).

    python benchmarks/peers/gpt.py --minutes 10 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path

import numpy as np
import torch
from common import ROOT, Budget, emit, load_splits, set_threads
from torch import nn
from torch.nn import functional as F


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width, bias=False)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        self.ln2 = nn.LayerNorm(width, bias=False)
        self.fc = nn.Linear(width, 4 * width, bias=False)
        self.out = nn.Linear(4 * width, width, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (a.view(B, T, self.heads, C // self.heads).transpose(1, 2) for a in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int, block: int, layers: int, heads: int, width: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(block, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(width, bias=False)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tok.weight  # tied
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
        for b in self.blocks:
            for m in (b.proj, b.out):
                nn.init.normal_(m.weight, 0.0, 0.02 / math.sqrt(2 * layers))

    def forward(self, x):
        pos = torch.arange(x.shape[1])
        h = self.tok(x) + self.pos(pos)
        for b in self.blocks:
            h = b(h)
        return self.head(self.ln(h))


def windows(ids: np.ndarray, starts: np.ndarray, block: int):
    x = torch.from_numpy(np.stack([ids[s : s + block] for s in starts]))
    y = torch.from_numpy(np.stack([ids[s + 1 : s + 1 + block] for s in starts]))
    return x, y


@torch.no_grad()
def estimate(model, ids, block, batch, rng, iters=20) -> float:
    model.eval()
    losses = []
    for _ in range(iters):
        x, y = windows(ids, rng.integers(0, len(ids) - block, batch), block)
        losses.append(F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item())
    model.train()
    return float(np.mean(losses))


@torch.no_grad()
def score(model, ids: np.ndarray, block: int) -> tuple[float, int]:
    """Mean nats/char of ids[33:], each predicted from its 33..64 characters before."""
    model.eval()
    stride = block // 2
    total, count = 0.0, 0
    starts = np.arange(0, len(ids) - block, stride)
    for i in range(0, len(starts), 256):
        x, y = windows(ids, starts[i : i + 256], block)
        nll = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="none")
        nll = nll.view(len(x), block)[:, stride:]
        total += nll.sum().item()
        count += nll.numel()
    return total / count, count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared/corpora/tinyshakespeare.txt"))
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    set_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    block, batch, layers, heads, width = 64, 12, 4, 4, 128
    lr, min_lr, warmup, eval_interval = 1e-3, 1e-4, 100, 250
    data = load_splits(Path(args.corpus))
    model = GPT(len(data.vocab), block, layers, heads, width)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.99),
    )
    budget = Budget(args.minutes * 60)
    best, best_state, step, history, train_loss = math.inf, None, 0, [], []
    while not budget.over():
        total = budget.total_steps
        if step < warmup:
            rate = lr * (step + 1) / warmup
        elif total is None:
            rate = lr
        else:
            s = min(1.0, (step - warmup) / max(1, total - warmup))
            rate = min_lr + 0.5 * (1 + math.cos(math.pi * s)) * (lr - min_lr)
        for g in opt.param_groups:
            g["lr"] = rate
        x, y = windows(data.train, rng.integers(0, len(data.train) - block, batch), block)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        train_loss.append(loss.item())
        if step == 20:
            budget.estimate(step)
        if step % eval_interval == 0 or budget.over():
            val = estimate(model, data.val, block, batch, rng)
            history.append((round(budget.elapsed(), 1), step, round(val, 4)))
            if val < best:
                best, best_state = val, copy.deepcopy(model.state_dict())
            budget.estimate(step)
    train_seconds = budget.elapsed()
    model.load_state_dict(best_state)
    test, n_test = score(model, data.test, block)
    last10, n_last10 = score(model, data.last10, block)
    emit(
        {
            "system": "pytorch-gpt",
            "recipe": "nanoGPT shakespeare_char CPU: 4x4x128, block 64, batch 12",
            "params": sum(p.numel() for p in model.parameters()),
            "steps": step,
            "chars_per_second": round(step * batch * block / train_seconds),
            "train_seconds": round(train_seconds, 1),
            "best_val": round(best, 4),
            "final_train": round(float(np.mean(train_loss[-eval_interval:])), 4),
            "test": test,
            "last10": last10,
            "scored": [n_test, n_last10],
            "history": history,
        }
    )


if __name__ == "__main__":
    main()
