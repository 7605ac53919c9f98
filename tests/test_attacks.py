"""The attack's losses and test steps (course_utils), and the references of the lab's attack (course_oracles)."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_oracles import attacks as reference
from course_oracles import spheres as sphere_reference
from course_utils import attacks, models, spheres


def test_l2_step_has_the_requested_length_per_example():
    X, grad = torch.randn(20, 5), torch.randn(20, 5) * torch.logspace(-3, 3, 20).unsqueeze(1)
    step = reference.l2_step(X, grad, 0.05) - X
    torch.testing.assert_close(step.norm(dim=1), torch.full((20,), 0.05))
    cosine = F.cosine_similarity(step, grad, dim=1)
    torch.testing.assert_close(cosine, torch.ones(20))


def test_l2_step_leaves_a_zero_gradient_in_place():
    X = torch.randn(3, 4)
    grad = torch.randn(3, 4)
    grad[1] = 0
    out = reference.l2_step(X, grad, 0.1)
    assert torch.equal(out[1], X[1])


def test_project_to_sphere_keeps_the_direction_and_uses_the_true_radius():
    X, y = torch.randn(40, 6), torch.arange(40) % 2
    P = reference.project_to_sphere(X, y, (1.0, 1.3))
    torch.testing.assert_close(P.norm(dim=1), torch.where(y == 1, 1.3, 1.0))
    torch.testing.assert_close(F.cosine_similarity(P, X, dim=1), torch.ones(40))


def test_nearest_error_distance_matches_a_loop():
    gen = torch.Generator().manual_seed(0)
    X, path = torch.randn(8, 3, generator=gen), torch.randn(6, 8, 3, generator=gen)
    wrong = torch.rand(6, 8, generator=gen) < 0.4
    wrong[:, 0] = False
    got = reference.nearest_error_distance(X, path, wrong)
    for i in range(8):
        dists = [math.dist(path[t, i].tolist(), X[i].tolist()) for t in range(6) if wrong[t, i]]
        assert got[i].item() == pytest.approx(min(dists, default=math.inf), rel=1e-5)


def test_margin_loss_matches_its_definition():
    logits, y = torch.randn(10, 4), torch.randint(0, 4, (10,))
    want = [max(logits[i, j] for j in range(4) if j != y[i]) - logits[i, y[i]] for i in range(10)]
    torch.testing.assert_close(attacks.margin_loss(logits, y), torch.stack(want))


class _CapModel(nn.Module):
    """Right by radius except on the cap x1 > 0.075 of the inner unit sphere, where it says "outer"."""

    def forward(self, X):
        score = 2 * (X.norm(dim=1) - 1.15) + 4 * X[:, 0]
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_sphere_attack_walks_the_great_circle_to_the_nearest_error():
    X = sphere_reference.sample_sphere(200, 5, seed=0)
    X = X[X[:, 0] < 0.0]
    y = torch.zeros(len(X), dtype=torch.int64)
    step = 0.01
    path, wrong = reference.sphere_attack(_CapModel(), X, y, spheres.RADII, step, 400)
    torch.testing.assert_close(path.norm(dim=2), torch.ones(path.shape[:2]))
    assert torch.equal(path[0], X)
    assert (path[1:] - path[:-1]).norm(dim=2).max() <= step + 1e-6
    # Exact distance from x to the cap {x1 >= t}: the chord between the heights arcsin(x1) and arcsin(t).
    t = 0.3 / 4
    angle = torch.asin(torch.tensor(t)) - torch.asin(X[:, 0])
    exact = 2 * torch.sin(angle / 2)
    found = reference.nearest_error_distance(X, path, wrong)
    assert torch.all(found >= exact - 1e-5)
    assert torch.all(found <= exact + step)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_sphere_attack_matches_model_predictions_and_restores_the_mode(batchnorm):
    torch.manual_seed(0)
    model = models.mlp(4, 16, 2, 2, batchnorm=batchnorm)
    X, y = spheres.concentric_spheres(64, 4, seed=1)
    path, wrong = reference.sphere_attack(model, X, y, spheres.RADII, 0.05, 5, loss_fn=attacks.margin_loss)
    assert model.training
    model.eval()
    with torch.no_grad():
        preds = torch.stack([model(P).argmax(dim=1) for P in path])
    assert torch.equal(wrong, preds != y)
    torch.testing.assert_close(path.norm(dim=2), torch.tensor(spheres.RADII)[y].expand(6, -1))


def test_is_cross_entropy_loss_the_per_example_cross_entropy():
    logits, y = torch.randn(9, 3), torch.randint(0, 3, (9,))
    torch.testing.assert_close(attacks.cross_entropy_loss(logits, y), -torch.log_softmax(logits, 1)[torch.arange(9), y])


def test_does_sphere_attack_leave_the_model_and_the_points_as_they_were():
    torch.manual_seed(0)
    model = models.mlp(4, 16, 2, 2, batchnorm=True, norm_position="before_relu")
    X, y = spheres.concentric_spheres(32, 4, seed=1)
    model.train()
    with torch.no_grad():
        model(3 * X)  # running statistics unlike any batch of the attack
    state = {k: v.clone() for k, v in model.state_dict().items()}
    X_before = X.clone()
    for training in (True, False):
        model.train(training)
        path, wrong = reference.sphere_attack(model, X, y, spheres.RADII, 0.05, 3)
        assert model.training is training
        assert torch.equal(X, X_before) and X.grad is None
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
        assert all(p.grad is None for p in model.parameters())
        assert not path.requires_grad and path.grad_fn is None and wrong.dtype == torch.bool


def test_does_sphere_attack_restore_the_mode_when_the_model_raises():
    model = attacks.RaisingModel().train()
    with pytest.raises(RuntimeError):
        reference.sphere_attack(model, torch.ones(2, 3), torch.zeros(2, dtype=torch.long), spheres.RADII, 0.1, 2)
    assert model.training


def test_does_sphere_attack_with_zero_steps_return_the_points():
    torch.manual_seed(0)
    model = models.mlp(3, 8, 1, 2)
    X, y = spheres.concentric_spheres(5, 3, seed=0)
    path, wrong = reference.sphere_attack(model, X, y, spheres.RADII, 0.1, 0)
    assert path.shape == (1, 5, 3) and torch.equal(path[0], X)
    with torch.no_grad():
        assert torch.equal(wrong[0], model(X).argmax(1) != y)


def test_does_gradient_step_move_by_the_step_size_times_the_raw_gradient():
    X = torch.zeros(3, 2, dtype=torch.float64)
    grad = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(attacks.gradient_step(X + 1, grad, 0.5), 1 + 0.5 * grad)


def test_does_clamp_to_box_clip_each_row_to_its_class_box_only():
    X = torch.tensor([[0.5, -2.0, 1.2], [3.0, 0.1, -1.25]])
    got = attacks.clamp_to_box(X, torch.tensor([0, 1]), (1.0, 1.3))
    torch.testing.assert_close(got, torch.tensor([[0.5, -1.0, 1.0], [1.3, 0.1, -1.25]]))


def test_does_the_reference_attack_take_its_steps_and_projections_from_its_arguments():
    torch.manual_seed(0)
    model = models.mlp(3, 8, 2, 2)
    X, y = spheres.concentric_spheres(10, 3, seed=2)
    path, _ = reference.sphere_attack(model, X, y, (0.9, 1.1), 0.2, 3, step_fn=attacks.gradient_step,
                                      project_fn=attacks.clamp_to_box)
    for before, after in zip(path[:-1], path[1:]):
        P = before.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(attacks.cross_entropy_loss(model.eval()(P), y).sum(), P)
        torch.testing.assert_close(after, attacks.clamp_to_box(attacks.gradient_step(before, grad, 0.2), y, (0.9, 1.1)))
