"""A CPU-sized Transformer encoder with its LayerNorms before the branches (pre-LN) or on the stream (post-LN),
the sequence-reversal task it learns, and what norm_in_practice measures of it: the residual stream's variance
block by block, and the training loss with and without learning-rate warm-up."""

from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

PLACEMENTS = ("pre", "post")


class Block(nn.Module):
    """Self-attention and an MLP, each a residual branch. `placement="pre"` normalizes each branch's input
    (x + f(norm(x))); `"post"` normalizes the stream after each addition (norm(x + f(x)))."""

    def __init__(self, width: int, heads: int, placement: str, norm: Callable[[int], nn.Module] = nn.LayerNorm):
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, not {placement!r}")
        self.placement = placement
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.norm1, self.norm2 = norm(width), norm(width)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.placement == "pre":
            x = x + self._attend(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self._attend(x))
        return self.norm2(x + self.mlp(x))


class ToyTransformer(nn.Module):
    """Token and position embeddings (each of variance 1), `depth` blocks, and a linear read-out per position;
    a pre-LN network normalizes the stream once more before the read-out, as GPT-2 does."""

    def __init__(self, vocab: int, length: int, width: int, depth: int, heads: int, placement: str,
                 norm: Callable[[int], nn.Module] = nn.LayerNorm):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(length, width))
        self.blocks = nn.ModuleList(Block(width, heads, placement, norm) for _ in range(depth))
        self.final_norm = norm(width) if placement == "pre" else nn.Identity()
        self.readout = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.readout(self.final_norm(x))


def reversal_batch(gen: torch.Generator, batch: int, length: int, vocab: int,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Random token sequences and their reversals, the toy task: position i must output token length - 1 - i."""
    tokens = torch.randint(0, vocab, (batch, length), generator=gen)
    return tokens.to(device), tokens.flip(1).to(device)


@torch.no_grad()
def stream_variances(model: ToyTransformer, tokens: torch.Tensor) -> list[float]:
    """The residual stream's variance (over tokens and features) after the embeddings and after every block."""
    x = model.embed(tokens) + model.position[: tokens.shape[1]]
    variances = [x.var().item()]
    for block in model.blocks:
        x = block(x)
        variances.append(x.var().item())
    return variances


def train_reversal(model: ToyTransformer, steps: int, lr: float, warmup: int = 0, batch: int = 32, seed: int = 0,
                   progress: bool = True) -> list[float]:
    """Train on fresh reversal batches with Adam, the learning rate rising linearly over the first `warmup` steps
    (none if 0); returns the loss of every step."""
    device = next(model.parameters()).device
    vocab, length = model.readout.out_features, model.position.shape[0]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in tqdm(range(steps), desc="training", leave=False, disable=not progress):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup) if warmup else lr
        tokens, target = reversal_batch(gen, batch, length, vocab, device)
        loss = F.cross_entropy(model(tokens).reshape(-1, vocab), target.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def plot_stream(variances: dict[str, list[float]]) -> tuple[plt.Figure, plt.Axes]:
    """The residual stream's variance against the block index, one line per network."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, values in variances.items():
        ax.plot(range(len(values)), values, marker="o", label=label)
    ax.set_xlabel("blocks passed (0 = embeddings)")
    ax.set_ylabel("variance of the residual stream")
    ax.legend()
    return fig, ax


def plot_losses(curves: dict[str, list[float]], chance: float) -> tuple[plt.Figure, plt.Axes]:
    """Training-loss curves on a log scale, with the loss of guessing uniformly marked."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, losses in curves.items():
        ax.plot(losses, label=label, alpha=0.85)
    ax.axhline(chance, color="grey", linestyle=":", label="uniform guess")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    return fig, ax
