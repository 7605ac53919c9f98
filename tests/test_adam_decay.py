"""Tests for course_utils.adam_decay: each network of the stack takes torch's Adam, Adam(weight_decay) or AdamW
steps, and the recorded norms, relative steps and effective decays are those of its first weight."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from course_utils import adam_decay as ad

matplotlib.use("Agg")
LR, WD, BETAS = 0.01, 0.2, (0.9, 0.999)


def data(n: int = 200, d_in: int = 6, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return torch.randn(n, d_in, generator=gen), torch.randint(0, classes, (n,), generator=gen)


def torch_steps(rule: str, scale: float, seed: int, X, y, steps: int, width: int, batch_size: int):
    """The same training with nn modules and torch's own optimizers: W1's norms and relative steps."""
    model = ad.reference_model(X.shape[1], width, int(y.max()) + 1, seed)
    decayed = [model[0].weight, model[3].weight, model[6].weight]
    groups = [{"params": decayed}, {"params": [model[6].bias], "weight_decay": 0.0}]
    decay = 0.0 if rule == "adam" else WD
    make = torch.optim.AdamW if rule == "adamw" else torch.optim.Adam
    opt = make(groups, lr=LR, betas=BETAS, weight_decay=decay)
    gen = torch.Generator().manual_seed(0)
    norms, moves = [], []
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch_size,), generator=gen)
        before = model[0].weight.detach().clone()
        opt.zero_grad()
        (scale * F.cross_entropy(model(X[idx]), y[idx])).backward()
        opt.step()
        norms.append(model[0].weight.norm().item())
        moves.append(((model[0].weight.detach() - before).norm() / before.norm()).item())
    return np.array(norms), np.array(moves)


def test_does_every_network_take_the_steps_of_torchs_optimizer():
    X, y = data()
    run = ad.train(X, y, ad.RULES, [1.0, 30.0], [0, 5], steps=12, lr=LR, weight_decay=WD, betas=BETAS,
                   width=8, batch_size=16)
    assert run.norms.shape == run.relative_steps.shape == run.effective_decay.shape == (12, 3, 2, 2)
    for r, rule in enumerate(ad.RULES):
        for k, scale in enumerate([1.0, 30.0]):
            for s, seed in enumerate([0, 5]):
                norms, moves = torch_steps(rule, scale, seed, X, y, 12, width=8, batch_size=16)
                case = f"{rule}, loss x {scale}, seed {seed}"
                np.testing.assert_allclose(run.norms[:, r, k, s], norms, rtol=1e-4, err_msg=case)
                np.testing.assert_allclose(run.relative_steps[:, r, k, s], moves, rtol=1e-3, atol=1e-7, err_msg=case)


def test_is_the_effective_decay_lambda_for_adamw_zero_for_adam_and_damped_by_v_for_l2():
    X, y = data()
    run = ad.train(X, y, ad.RULES, [1.0, 100.0], [0], steps=30, lr=LR, weight_decay=WD, width=8, batch_size=16)
    assert np.all(run.effective_decay[:, 0] == 0)
    np.testing.assert_allclose(run.effective_decay[:, 2], WD, rtol=1e-6)
    l2 = run.effective_decay[-1, 1, :, 0]
    assert l2[0] > 10 * WD, "dividing lambda * W by sqrt(v) ~ |gradient| << 1 strengthens the decay"
    assert l2[1] < l2[0] / 10, "a loss 100 times larger makes sqrt(v) larger and the L2 decay weaker"


def test_are_adam_and_adamw_blind_to_the_losss_scale_but_l2_is_not():
    X, y = data()
    run = ad.train(X, y, ad.RULES, [1.0, 100.0], [0], steps=40, lr=LR, weight_decay=WD, width=8, batch_size=16)
    for r in (0, 2):
        np.testing.assert_allclose(run.norms[:, r, 0], run.norms[:, r, 1], rtol=1e-3)
    assert abs(run.norms[-1, 1, 0, 0] / run.norms[-1, 1, 1, 0] - 1) > 0.1


def test_does_the_oracle_take_torchs_steps_from_the_given_moments():
    """co.adam_decay.torch_adam_step continues a run of torch's optimizer from its moments after step - 1 steps."""
    import course_oracles as co

    gen = torch.Generator().manual_seed(0)
    w, grads = torch.randn(5, generator=gen), [torch.randn(5, generator=gen) for _ in range(3)]
    for decoupled, make in [(True, torch.optim.AdamW), (False, torch.optim.Adam)]:
        param = torch.nn.Parameter(w.clone())
        opt = make([param], lr=0.05, weight_decay=0.3, betas=(0.8, 0.99), eps=1e-3)
        for grad in grads[:2]:
            param.grad = grad.clone()
            opt.step()
        state = opt.state[param]
        got = co.adam_decay.torch_adam_step(param.detach(), grads[2], state["exp_avg"], state["exp_avg_sq"], 3, 0.05,
                                            0.3, decoupled, (0.8, 0.99), 1e-3)
        param.grad = grads[2].clone()
        opt.step()
        for mine, want in zip(got, (param.detach(), state["exp_avg"], state["exp_avg_sq"])):
            torch.testing.assert_close(mine, want)
    assert co.adam_decay.adamw_equilibrium_step(0.01, 0.2, 0.0) == pytest.approx(np.sqrt(2 * 0.01 * 0.2))


@pytest.mark.parametrize("beta1", [0.9, 0.5])
def test_does_adamw_settle_at_its_equilibrium_step(beta1):
    """In the white-noise model AdamW's relative step settles at sqrt(2 lr wd (1 - b1) / (1 + b1))."""
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(2048, 20, generator=gen), torch.randint(0, 10, (2048,), generator=gen)
    run = ad.train(X, y, ["adamw"], [1.0], [0], steps=1500, lr=0.01, weight_decay=0.4, betas=(beta1, 0.999))
    want = np.sqrt(2 * 0.01 * 0.4 * (1 - beta1) / (1 + beta1))
    assert run.tail_mean("relative_steps", 300)[0, 0, 0] == pytest.approx(want, rel=0.06)


def test_are_bad_arguments_refused_by_name():
    X, y = data()
    with pytest.raises(ValueError, match="sgd"):
        ad.train(X, y, ["sgd"], [1.0], [0], steps=1, lr=LR, weight_decay=WD)
    with pytest.raises(ValueError, match="positive"):
        ad.train(X, y, ["adam"], [0.0], [0], steps=1, lr=LR, weight_decay=WD)
    run = ad.train(X, y, ["adam"], [1.0], [0], steps=3, lr=LR, weight_decay=WD, width=8)
    with pytest.raises(ValueError, match="between 1 and the 3"):
        run.tail_mean("norms", 4)
    with pytest.raises(ValueError, match="norm"):
        run.tail_mean("norm", 1)


def test_does_the_plot_draw_a_norm_and_a_smoothed_step_curve_per_setting():
    X, y = data()
    run = ad.train(X, y, ["adam", "adamw"], [1.0, 10.0, 100.0], [0, 1], steps=30, lr=LR, weight_decay=WD, width=8)
    fig, axes = ad.plot_decay_runs(run, window=10, title="three rules")
    assert fig._suptitle.get_text() == "three rules"
    assert len(axes[0].lines) == len(axes[1].lines) == 6
    assert len(axes[0].lines[0].get_xdata()) == 30 and len(axes[1].lines[0].get_xdata()) == 21
    np.testing.assert_allclose(axes[0].lines[3].get_ydata(), run.norms[:, 1, 0].mean(axis=-1))
    assert axes[1].lines[0].get_ydata()[0] == pytest.approx(run.relative_steps[:10, 0, 0].mean())
