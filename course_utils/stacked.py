"""Several same-shaped ReLU MLPs trained together with Adam, as one stack of models.

`StackedMLP` holds M copies of one `cu.models.mlp` architecture (typically one per seed) with a leading
model axis on every weight. Activations are laid out (M, units, batch), as in `cu.sweep`, so every
layer of every model is one batched matrix product and every BatchNorm of every model is one
`F.batch_norm` over M * units channels. Adam's update is element by element, so one Adam over the
stacked tensors is M independent Adams: `fit_stacked` gives each model what `cu.train.fit` would, up
to floating-point rounding (measured side by side on one torch thread, four width-32 models train 2.5 to 3
times faster stacked than one after the other, at depth 2 as at depth 30). `unstack` hands a trained model back as the
`nn.Sequential` that `cu.models.mlp` builds. Used by adversarial_spheres.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .models import mlp


def _structure(model: nn.Sequential) -> tuple[list[str], int, int, int, int]:
    """Layer kinds of an `mlp` in order, with its input size, width, number of hidden layers and outputs."""
    kinds = []
    for layer in model:
        if isinstance(layer, nn.Linear):
            kinds.append("linear")
        elif isinstance(layer, nn.BatchNorm1d):
            kinds.append("norm")
        elif isinstance(layer, nn.ReLU):
            kinds.append("relu")
        else:
            raise TypeError(f"StackedMLP stacks Linear, BatchNorm1d and ReLU layers, not {type(layer).__name__}")
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if len(linears) < 2 or len({m.out_features for m in linears[:-1]}) != 1:
        raise ValueError("StackedMLP stacks MLPs with at least one hidden layer, all of the same width")
    return kinds, linears[0].in_features, linears[0].out_features, len(linears) - 1, linears[-1].out_features


class StackedMLP(nn.Module):
    """M MLPs of one architecture (as built by `cu.models.mlp`) evaluated and trained as one module.

    `forward(X)` takes X of shape (B, in), shared by all models, or (M, B, in), one batch per model, and
    returns logits of shape (M, B, out). In training mode each model's BatchNorm uses the statistics of its
    own batch and updates its own running statistics, exactly as `nn.BatchNorm1d` does.
    """

    def __init__(self, models: Sequence[nn.Sequential]):
        super().__init__()
        shapes = {tuple(_structure(m)[0]) for m in models}
        if len(models) == 0 or len(shapes) != 1:
            raise ValueError("StackedMLP needs at least one model, all of the same architecture")
        self.kinds, self.in_features, self.width, self.depth, self.out_features = _structure(models[0])
        if {_structure(m)[1:] for m in models} != {(self.in_features, self.width, self.depth, self.out_features)}:
            raise ValueError("StackedMLP needs models of the same sizes")
        self.num_models = len(models)
        stack = lambda tensors: nn.Parameter(torch.stack([t.detach().clone() for t in tensors]))
        layers = [[m for m in model] for model in models]
        positions = range(len(self.kinds))
        self.weights = nn.ParameterList([stack([ls[i].weight for ls in layers]) for i in positions
                                         if self.kinds[i] == "linear"])  # (M, out, in)
        self.biases = nn.ParameterList([stack([ls[i].bias.unsqueeze(1) for ls in layers]) for i in positions
                                        if self.kinds[i] == "linear"])  # (M, out, 1)
        norms = [i for i in positions if self.kinds[i] == "norm"]
        self.gammas = nn.ParameterList([stack([ls[i].weight for ls in layers]) for i in norms])  # (M, width)
        self.betas = nn.ParameterList([stack([ls[i].bias for ls in layers]) for i in norms])
        for j, i in enumerate(norms):
            first = layers[0][i]
            if first.momentum is None or not first.track_running_stats or not first.affine:
                raise ValueError("StackedMLP stacks BatchNorm1d layers with momentum, running statistics and affine")
            self.momentum, self.bn_eps = first.momentum, first.eps
            self.register_buffer(f"running_mean_{j}", torch.stack([ls[i].running_mean.clone() for ls in layers]))
            self.register_buffer(f"running_var_{j}", torch.stack([ls[i].running_var.clone() for ls in layers]))
        self.num_norms = len(norms)
        self.templates = [model for model in models]  # for `unstack`: the architecture, not the weights

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        M = self.num_models
        linear, norm = 0, 0
        h = None
        for kind in self.kinds:
            if kind == "linear":
                W, b = self.weights[linear], self.biases[linear]
                if h is None:  # the input: shared (B, in) or one batch per model (M, B, in)
                    h = torch.matmul(W, X.transpose(-1, -2)) + b  # (M, out, B)
                else:
                    h = torch.baddbmm(b, W, h)
                linear += 1
            elif kind == "relu":
                h = torch.relu(h)
            else:
                units = h.shape[1]
                mean, var = getattr(self, f"running_mean_{norm}"), getattr(self, f"running_var_{norm}")
                h = F.batch_norm(h.reshape(1, M * units, -1), mean.view(-1), var.view(-1), self.gammas[norm].view(-1),
                                 self.betas[norm].view(-1), self.training, self.momentum, self.bn_eps).view(M, units, -1)
                norm += 1
        return h.transpose(1, 2)  # (M, B, out)

    def unstack(self, index: int) -> nn.Sequential:
        """Model `index` of the stack as a standalone `nn.Sequential`, in the stack's mode, on the stack's device."""
        template = self.templates[index]
        model = nn.Sequential(*[type(layer)(*_arguments(layer)) for layer in template]).to(self.weights[0])
        linears = [m for m in model if isinstance(m, nn.Linear)]
        norms = [m for m in model if isinstance(m, nn.BatchNorm1d)]
        with torch.no_grad():
            for layer, W, b in zip(linears, self.weights, self.biases):
                layer.weight.copy_(W[index])
                layer.bias.copy_(b[index, :, 0])
            for j, layer in enumerate(norms):
                layer.weight.copy_(self.gammas[j][index])
                layer.bias.copy_(self.betas[j][index])
                layer.running_mean.copy_(getattr(self, f"running_mean_{j}")[index])
                layer.running_var.copy_(getattr(self, f"running_var_{j}")[index])
                layer.momentum, layer.eps = self.momentum, self.bn_eps
        return model.train(self.training)


def _arguments(layer: nn.Module) -> tuple:
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if isinstance(layer, nn.BatchNorm1d):
        return (layer.num_features,)
    return ()


class Flattened(nn.Module):
    """A `StackedMLP` seen as one classifier of M * n rows: rows [m * n, (m + 1) * n) go to model m.

    In eval mode no row affects another, so an attack written for one model attacks all M at once when it
    is given the points repeated M times. Used by adversarial_spheres.
    """

    def __init__(self, stack: StackedMLP):
        super().__init__()
        self.stack = stack

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        M = self.stack.num_models
        if len(X) % M:
            raise ValueError(f"Flattened takes M * n rows for its {M} models, not {len(X)}")
        return self.stack(X.reshape(M, len(X) // M, X.shape[-1])).reshape(len(X), -1)


def fit_stacked(
    stack: StackedMLP,
    X: torch.Tensor,
    y: torch.Tensor,
    num_epochs: int,
    lr: float,
    seeds: Sequence[int],
    batch_size: int = 128,
    progress: bool = True,
    weight_decay: float = 0.0,
) -> torch.Tensor:
    """Train every model of `stack` with Adam on shuffled minibatches of (X, y), model m shuffling with `seeds[m]`.

    Each model sees what `cu.train.fit(model, X, y, num_epochs, lr, batch_size, "adam", seed,
    weight_decay=weight_decay)` would show it, in the same order. Returns the mean training loss of each model
    in each epoch, (num_epochs, M).
    """
    M = stack.num_models
    if len(seeds) != M:
        raise ValueError(f"fit_stacked needs one seed per model: {M} models, {len(seeds)} seeds")
    opt = torch.optim.Adam(stack.parameters(), lr=lr, weight_decay=weight_decay)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    stack.train()
    losses = []
    for _ in tqdm(range(num_epochs), desc="training", unit="epoch", disable=not progress, leave=False):
        order = torch.stack([torch.randperm(len(X), generator=g) for g in gens]).to(X.device)  # (M, N)
        total = torch.zeros(M, dtype=torch.float64, device=X.device)
        for start in range(0, len(X), batch_size):
            idx = order[:, start:start + batch_size]
            if idx.shape[1] < 2 and stack.num_norms:
                continue  # BatchNorm cannot train on a batch of one (as in cu.train.fit)
            opt.zero_grad()
            logits = stack(X[idx])  # (M, B, out)
            per_model = F.cross_entropy(logits.transpose(1, 2), y[idx], reduction="none").mean(dim=1)  # (M,)
            per_model.sum().backward()  # model m's parameters get the gradient of its own mean loss
            opt.step()
            total += per_model.detach().double() * idx.shape[1]
        losses.append(total / len(X))
    return torch.stack(losses).float()


@torch.no_grad()
def evaluate_stacked(stack: StackedMLP, X: torch.Tensor, y: torch.Tensor, chunk: int = 20_000) -> torch.Tensor:
    """Accuracy of every model of `stack` on (X, y) in eval mode, shape (M,); the stack's mode is restored."""
    was_training = stack.training
    stack.eval()
    correct = torch.zeros(stack.num_models, device=X.device)
    for start in range(0, len(X), chunk):
        logits = stack(X[start:start + chunk])
        correct += (logits.argmax(dim=2) == y[start:start + chunk]).sum(dim=1)
    stack.train(was_training)
    return correct / max(len(X), 1)


def seeded_models(seeds: Sequence[int], *args, **kwargs) -> list[nn.Sequential]:
    """One `cu.models.mlp(*args, **kwargs)` per seed, each initialized after `torch.manual_seed(seed)`.

    The models are what `torch.manual_seed(seed); cu.models.mlp(...)` gives; the global generator is left
    as it was.
    """
    state = torch.get_rng_state()
    try:
        out = []
        for seed in seeds:
            torch.manual_seed(int(seed))
            out.append(mlp(*args, **kwargs))
        return out
    finally:
        torch.set_rng_state(state)

